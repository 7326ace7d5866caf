import { randomUUID } from 'node:crypto';
import { LOCK_TIMEOUT_S } from '../config.js';
import type { Item } from '../manifest/parse.js';
import { recordFromRow } from '../record.js';
import { LedgerHttpCache, type CacheRow, type CacheRows } from './http-cache.js';
import { LeaseCache } from './leases.js';
import { isDeadLocalOwner } from './owner.js';
import { PgBridge } from './postgres/bridge.js';
import type { NewJob } from './postgres/jobs-sql.js';
import { PAGE_ROWS } from './postgres/reads-sql.js';
import { ReadAhead } from './read-ahead.js';
import { SeenKeys } from './seen.js';
import {
  countByHost, pendingJob, planOf, type AttemptRow, type ClaimOptions, type HostRow, type InvalidLineRow, type JobRow, type JobState, type Ledger, type LedgerReads,
  type OpResult, type OpRow, type Outcome, type PartRow, type PlanOptions, type PlanResult, type RepairPatch, type RunRow, type StatusCounts,
} from './types.js';

export function isPostgres(db: string | undefined): db is string {
  return db !== undefined && /^postgres(ql)?:\/\//.test(db);
}

/** What reports read, asked of the ledger's thread (pages of a thousand rows for export). */
class PgReads implements LedgerReads {
  constructor(private readonly bridge: PgBridge) {}

  counts(): StatusCounts {
    return this.bridge.call('counts', null);
  }

  job(key: string): JobRow | undefined {
    return this.bridge.call('job', key);
  }

  *jobs(): IterableIterator<JobRow> {
    let after: [number, string] | null = null;
    for (;;) {
      const page: JobRow[] = this.bridge.call('jobsPage', after);
      yield* page;
      if (page.length < PAGE_ROWS) return;
      const last = page[page.length - 1]!;
      after = [last.created_at, last.key];
    }
  }

  *attempts(): IterableIterator<Record<string, unknown>> {
    let after = 0;
    for (;;) {
      const page: Record<string, unknown>[] = this.bridge.call('attemptsPage', after);
      yield* page;
      if (page.length < PAGE_ROWS) return;
      after = page[page.length - 1]!.id as number;
    }
  }

  runs(): RunRow[] {
    return this.bridge.call('runs', null);
  }

  invalidLines(): InvalidLineRow[] {
    return this.bridge.call('invalidLines', null);
  }

  hosts(): Map<string, HostRow> {
    return new Map(this.bridge.call<HostRow[]>('hosts', null).map((r) => [r.host, r]));
  }

  recentFailures(since: number): Map<string, number> {
    return countByHost(this.bridge.call<string[]>('failedAttemptUrls', since));
  }
}

class PgCacheRows implements CacheRows {
  constructor(private readonly bridge: PgBridge) {}

  find(url: string, method: string): CacheRow[] {
    // Structured cloning hands a Buffer over as a plain Uint8Array.
    return this.bridge.call<CacheRow[]>('cacheFind', { url, method }).map((r) => ({ ...r, body: r.body ? Buffer.from(r.body) : null }));
  }

  save(id: number | null, url: string, method: string, row: Omit<CacheRow, 'id'>): void {
    this.bridge.write('cacheSave', { id, url, method, row });
  }

  deleteUrl(url: string): void {
    this.bridge.write('cacheDelete', url);
  }

  expire(now: number): void {
    this.bridge.write('cacheExpire', now);
  }
}

/** A done job's `skipped` record, with this line's source. */
function skipped(row: JobRow, source: string): PlanResult {
  const record = recordFromRow(row, { status: 'skipped', attempts: 0, elapsed_ms: 0, resumed_from: 0, source });
  return { kind: 'skipped', json: JSON.stringify(record) };
}

/**
 * The ledger in PostgreSQL (`--db postgres://…`), for processes on several machines: the same
 * tables, states, ops and leases as the SQLite ledger, asked through the ledger's own thread
 * (postgres/bridge.ts). Claims skip rows another process is claiming (FOR UPDATE SKIP LOCKED);
 * every write after a claim names the lease owner.
 */
export class PgLedger implements Ledger {
  readonly runId = randomUUID();
  readonly queries: LedgerReads;
  readonly httpCache: LedgerHttpCache;
  private readonly bridge: PgBridge;
  private readonly seen = new SeenKeys();
  /** rows read ahead in planning order for a re-run (see plan) */
  private readonly ahead = new ReadAhead<JobRow>();
  /** claims and renewals are committed one by one before they return (see LeaseCache) */
  private readonly leases = new LeaseCache();

  constructor(url: string, opts: { lockTimeoutMs?: number } = {}) {
    this.bridge = new PgBridge(url, opts.lockTimeoutMs ?? LOCK_TIMEOUT_S * 1000);
    this.queries = new PgReads(this.bridge);
    this.httpCache = new LedgerHttpCache(new PgCacheRows(this.bridge));
  }

  beginRun(argv: readonly string[], now: number): void {
    this.bridge.write('beginRun', { runId: this.runId, argv, now });
  }

  endRun(counts: Record<string, number>, exitCode: number, now: number): void {
    this.bridge.write('endRun', { runId: this.runId, counts, exitCode, now });
  }

  invalidLine(source: string, message: string, now: number): boolean {
    return this.bridge.call('invalidLine', { source, message, runId: this.runId, now });
  }

  /** Every line is parsed and planned: a look-up by key alone would cost the same round trip. */
  planByKey(): null {
    return null;
  }

  plan(item: Item, now: number, opts: PlanOptions = {}): PlanResult {
    if (!this.seen.add(item.key)) return { kind: 'duplicate' };
    // A re-run of a finished manifest: its done jobs come from rows read ahead, not a round trip each.
    const known = opts.skippedRecord ? this.ahead.next(item.key) : undefined;
    if (known?.state === 'done') return skipped(known, item.source);
    const job: NewJob = { ...pendingJob(item, now), seen_run: this.runId, now };
    // A row read ahead that is not done is asked for as it is now; the rows after it stay.
    const size = opts.skippedRecord && known === undefined ? this.ahead.missed() : 0;
    const { row, ahead } = this.bridge.call<{ row: JobRow; ahead: JobRow[] }>('plan', { job, ahead: size });
    for (const r of ahead) this.ahead.fill(r.key, r);
    if (row.state === 'done' && opts.skippedRecord) return skipped(row, item.source);
    return planOf(row, now, opts);
  }

  claim(key: string, owner: string, now: number, ttlMs: number, opts: ClaimOptions = {}): boolean {
    const expires = now + ttlMs;
    const claimed = this.bridge.call<boolean>('claim', { key, owner, now, expires, reopen: opts.reopen ?? false, steal: opts.steal ?? null });
    if (claimed) this.leases.claimed(key, owner, expires);
    return claimed;
  }

  renew(owner: string, now: number, ttlMs: number): number {
    const expires = now + ttlMs;
    const renewed = new Set(this.bridge.call<string[]>('renew', { owner, expires }));
    this.leases.renewed(owner, renewed, expires);
    return renewed.size;
  }

  finish(key: string, owner: string, o: Outcome, now: number): boolean {
    this.leases.forget(key, owner);
    return this.bridge.call('finish', { key, owner, o, now });
  }

  release(key: string, owner: string, now: number): boolean {
    this.leases.forget(key, owner);
    return this.bridge.call('release', { key, owner, now });
  }

  holds(key: string, owner: string, now: number): boolean {
    return this.leases.holds(key, owner, now);
  }

  holdsInTable(key: string, owner: string, now: number): boolean {
    return this.bridge.call('holds', { key, owner, now });
  }

  repair(key: string, from: JobState, to: JobState, patch: RepairPatch, now: number): boolean {
    this.leases.forget(key);
    return this.bridge.call('repair', { key, from, to, patch, now });
  }

  job(key: string): JobRow | undefined {
    return this.bridge.call('job', key);
  }

  jobsIn(state: JobState): IterableIterator<JobRow> {
    return this.bridge.call<JobRow[]>('jobsIn', state)[Symbol.iterator]();
  }

  doneKeysBySha(sha256: string): string[] {
    return this.bridge.call('doneKeysBySha', sha256);
  }

  getPart(jobKey: string): PartRow | undefined {
    return this.bridge.call('getPart', jobKey);
  }

  savePart(jobKey: string, part: PartRow, now: number): void {
    this.bridge.write('savePart', { jobKey, part, now });
  }

  dropPart(jobKey: string): void {
    this.bridge.write('dropPart', jobKey);
  }

  partKeys(): string[] {
    return this.bridge.call('partKeys', null);
  }

  recordAttempt(attempt: AttemptRow): void {
    this.bridge.write('recordAttempt', { runId: this.runId, attempt });
  }

  beginOp(key: string, jobKey: string, kind: OpRow['kind'], owner: string, now: number, detail: string | null = null): OpResult {
    return this.bridge.call('beginOp', { key, jobKey, kind, owner, now, detail });
  }

  finishOp(key: string, result: unknown, now: number): void {
    this.bridge.write('finishOp', { key, result, now });
  }

  recordOp(key: string, jobKey: string, kind: OpRow['kind'], owner: string, now: number, detail: string | null, result: unknown): void {
    this.bridge.write('recordOp', { key, jobKey, kind, owner, now, detail, result });
  }

  dropOp(key: string): void {
    this.bridge.write('dropOp', key);
  }

  ops(state: OpRow['state']): OpRow[] {
    return this.bridge.call('ops', state);
  }

  unrecordedFinalizes(): OpRow[] {
    return this.bridge.call('unrecordedFinalizes', null);
  }

  host(name: string): (HostRow & { updated_at: number }) | undefined {
    return this.bridge.call('host', name);
  }

  saveHost(row: HostRow, now: number): void {
    this.bridge.write('saveHost', { row, now });
  }

  takeHostSlot(host: string, spacingMs: number, now: number): number | null {
    return this.bridge.call('takeSlot', { host, spacingMs, now });
  }

  hostNotBefore(host: string, at: number): void {
    this.bridge.write('hostNotBefore', { host, at });
  }

  takeHostPermit(host: string, owner: string, cap: number, now: number, ttlMs: number): number | null {
    return this.bridge.call('takePermit', { host, owner, cap, now, expires: now + ttlMs });
  }

  freeHostPermit(id: number): void {
    this.bridge.write('freePermit', id);
  }

  dropDeadPermits(): number {
    const dead = this.bridge.call<string[]>('permitOwners', null).filter(isDeadLocalOwner);
    return dead.length > 0 ? this.bridge.call<number>('dropPermitsOf', dead) : 0;
  }

  countHostFailure(host: string, failed: boolean, now: number): number {
    return this.bridge.call('countFailure', { host, failed, now });
  }

  /** Writes are sent as they are made; this returns once the thread has committed them. */
  flush(): void {
    this.bridge.flush();
  }

  committed(): Promise<void> {
    return this.bridge.committed();
  }

  close(): void {
    this.bridge.close();
    this.seen.close();
  }
}

import { randomUUID } from 'node:crypto';
import type Database from 'better-sqlite3';
import { LOCK_TIMEOUT_S } from '../config.js';
import type { Item } from '../manifest/parse.js';
import { openDatabase } from './open.js';
import { isDeadLocalOwner } from './owner.js';
import { AttemptsTable } from './sqlite/attempts.js';
import type { LedgerHttpCache } from './http-cache.js';
import { sqliteHttpCache } from './sqlite/http-cache.js';
import { GroupCommit } from './sqlite/group-commit.js';
import { HostsTable } from './sqlite/hosts.js';
import { JobsTable } from './sqlite/jobs.js';
import { OpsTable } from './sqlite/ops.js';
import { PartsTable } from './sqlite/parts.js';
import { LedgerQueries } from './sqlite/queries.js';
import { RunsTable } from './sqlite/runs.js';
import type { AttemptRow, ClaimOptions, HostRow, JobRow, JobState, Ledger, OpResult, OpRow, Outcome, PartRow, PlanOptions, PlanResult, RepairPatch } from './types.js';

/**
 * The embedded SQLite ledger (WAL): one file per table under sqlite/, their SQL beside the code
 * that runs it, sharing one group commit. This class only routes the Ledger interface to them.
 */
export class SqliteLedger implements Ledger {
  readonly runId = randomUUID();
  /** what status, export and dry-run read */
  readonly queries: LedgerQueries;
  readonly httpCache: LedgerHttpCache;
  private readonly db: Database.Database;
  private readonly group: GroupCommit;
  private readonly jobsTable: JobsTable;
  private readonly opsTable: OpsTable;
  private readonly parts: PartsTable;
  private readonly attemptsTable: AttemptsTable;
  private readonly hostsTable: HostsTable;
  private readonly runsTable: RunsTable;

  constructor(path: string, opts: { lockTimeoutMs?: number } = {}) {
    const db = (this.db = openDatabase(path, opts));
    // 4 MB holds the interior pages of every index of a ledger of millions of jobs; a larger cache
    // only raised the peak RSS of a re-run (docs/decisions.md).
    db.pragma('cache_size = -4096');
    const group = (this.group = new GroupCommit(db, opts.lockTimeoutMs ?? LOCK_TIMEOUT_S * 1000));
    this.jobsTable = new JobsTable(db, group, this.runId);
    this.opsTable = new OpsTable(db, group);
    this.parts = new PartsTable(db, group);
    this.attemptsTable = new AttemptsTable(db, group, this.runId);
    this.hostsTable = new HostsTable(db, group);
    this.runsTable = new RunsTable(db, group, this.runId);
    this.queries = new LedgerQueries(db, () => group.flush());
    this.httpCache = sqliteHttpCache(db, group);
  }

  beginRun(argv: readonly string[], now: number): void {
    this.runsTable.begin(argv, now);
  }

  endRun(counts: Record<string, number>, exitCode: number, now: number): void {
    this.runsTable.end(counts, exitCode, now);
  }

  invalidLine(source: string, message: string, now: number): boolean {
    return this.runsTable.invalidLine(source, message, now);
  }

  planByKey(key: string, source: string): Extract<PlanResult, { kind: 'duplicate' | 'skipped' }> | null {
    return this.jobsTable.planByKey(key, source);
  }

  plan(item: Item, now: number, opts: PlanOptions = {}): PlanResult {
    return this.jobsTable.plan(item, now, opts);
  }

  claim(key: string, owner: string, now: number, ttlMs: number, opts: ClaimOptions = {}): boolean {
    return this.jobsTable.claim(key, owner, now, ttlMs, opts);
  }

  renew(owner: string, now: number, ttlMs: number): number {
    this.hostsTable.renewPermits(owner, now + ttlMs);
    return this.jobsTable.renew(owner, now, ttlMs);
  }

  finish(key: string, owner: string, outcome: Outcome, now: number): boolean {
    return this.jobsTable.finish(key, owner, outcome, now);
  }

  release(key: string, owner: string, now: number): boolean {
    return this.jobsTable.release(key, owner, now);
  }

  holds(key: string, owner: string, now: number): boolean {
    return this.jobsTable.holds(key, owner, now);
  }

  holdsInTable(key: string, owner: string, now: number): boolean {
    return this.jobsTable.holdsInTable(key, owner, now);
  }

  repair(key: string, from: JobState, to: JobState, patch: RepairPatch, now: number): boolean {
    return this.jobsTable.repair(key, from, to, patch, now);
  }

  job(key: string): JobRow | undefined {
    return this.jobsTable.job(key);
  }

  jobsIn(state: JobState): IterableIterator<JobRow> {
    return this.jobsTable.jobsIn(state);
  }

  doneKeysBySha(sha256: string): string[] {
    return this.jobsTable.doneKeysBySha(sha256);
  }

  getPart(jobKey: string): PartRow | undefined {
    return this.parts.get(jobKey);
  }

  savePart(jobKey: string, part: PartRow, now: number): void {
    this.parts.save(jobKey, part, now);
  }

  dropPart(jobKey: string): void {
    this.parts.drop(jobKey);
  }

  partKeys(): string[] {
    return this.parts.keys();
  }

  recordAttempt(attempt: AttemptRow): void {
    this.attemptsTable.record(attempt);
  }

  beginOp(key: string, jobKey: string, kind: OpRow['kind'], owner: string, now: number, detail: string | null = null): OpResult {
    return this.opsTable.begin(key, jobKey, kind, owner, now, detail);
  }

  finishOp(key: string, result: unknown, now: number): void {
    this.opsTable.finish(key, result, now);
  }

  recordOp(key: string, jobKey: string, kind: OpRow['kind'], owner: string, now: number, detail: string | null, result: unknown): void {
    this.opsTable.record(key, jobKey, kind, owner, now, detail, result);
  }

  dropOp(key: string): void {
    this.opsTable.drop(key);
  }

  ops(state: OpRow['state']): OpRow[] {
    return this.opsTable.inState(state);
  }

  unrecordedFinalizes(): OpRow[] {
    return this.opsTable.unrecordedFinalizes();
  }

  host(name: string): (HostRow & { updated_at: number }) | undefined {
    return this.hostsTable.get(name);
  }

  saveHost(row: HostRow, now: number): void {
    this.hostsTable.save(row, now);
  }

  takeHostSlot(host: string, spacingMs: number, now: number): number | null {
    return this.hostsTable.takeSlot(host, spacingMs, now);
  }

  hostNotBefore(host: string, at: number): void {
    this.hostsTable.notBefore(host, at);
  }

  takeHostPermit(host: string, owner: string, cap: number, now: number, ttlMs: number): number | null {
    return this.hostsTable.takePermit(host, owner, cap, now, ttlMs);
  }

  freeHostPermit(id: number): void {
    this.hostsTable.freePermit(id);
  }

  dropDeadPermits(): number {
    return this.hostsTable.dropPermitsOf(isDeadLocalOwner);
  }

  countHostFailure(host: string, failed: boolean, now: number): number {
    return this.hostsTable.countFailure(host, failed, now);
  }

  flush(): void {
    this.group.flush();
  }

  committed(when: 'soon' | 'with-group' = 'soon'): Promise<void> {
    return this.group.committed(when);
  }

  close(): void {
    this.group.flush();
    this.db.close();
    this.jobsTable.close();
  }
}

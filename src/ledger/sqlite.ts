import { randomUUID } from 'node:crypto';
import type Database from 'better-sqlite3';
import { LEDGER_BATCH } from '../config.js';
import type { Item } from '../manifest/parse.js';
import { openDatabase } from './open.js';
import { isDeadLocalOwner } from './owner.js';
import { SeenKeys } from './seen.js';
import { REPAIRS, sourcesOf, type AttemptRow, type JobState, type OpRow, type JobRow, type Ledger, type ClaimOptions, type HostRow, type RunRow, type OpResult, type Outcome, type PartRow, type RepairPatch, type PlanResult, type StatusCounts, type PlanOptions, type InvalidLineRow } from './types.js';

const COMMIT_AFTER_MS = 25;
/** The `skipped` record of a done job without its source (added per line), in RECORD_FIELDS order. */
const SKIPPED_JSON = `CASE WHEN state = 'done' THEN json_object(
  'id', item_id, 'url', coalesce(url, canonical_url), 'canonical_url', canonical_url, 'final_url', final_url,
  'status', 'skipped', 'reason', reason, 'http_status', http_status, 'sha256', sha256, 'bytes', bytes, 'path', path,
  'content_type', content_type, 'etag', etag, 'last_modified', last_modified, 'resumed_from', 0, 'attempts', 0,
  'elapsed_ms', 0) END`;
const READ_AHEAD_MAX = 1024;

interface SkippedRow {
  rowid: number;
  key: string;
  json: string | null;
}
const REPAIR_FIELDS = new Set(['status', 'reason', 'http_status', 'url', 'final_url', 'sha256', 'bytes', 'path', 'content_type', 'etag', 'last_modified', 'resumed_from', 'attempts', 'elapsed_ms']);

/** The record ends with `"elapsed_ms":0}`: the line's source goes before the brace. */
function skippedJson(json: string, source: string): string {
  return `${json.slice(0, -1)},"source":${JSON.stringify(source)}}`;
}

function inList(states: readonly string[]): string {
  return states.map((s) => `'${s}'`).join(', ');
}

/** SQLite ledger. Writes are grouped into short IMMEDIATE transactions (see LEDGER_BATCH). */
export class SqliteLedger implements Ledger {
  readonly runId = randomUUID();
  private readonly db: Database.Database;
  private readonly stmt;
  private pending = 0;
  private timer: NodeJS.Timeout | null = null;
  /** callers of committed() waiting for the open group's commit */
  private waiting: { resolve: () => void; reject: (err: Error) => void }[] = [];
  private readonly seen = new SeenKeys();
  /**
   * Rows read ahead in planning order (key, skipped JSON), the next one expected, and how many to
   * read next time (0: the manifest is not in ledger order)
   */
  private aheadKeys: string[] = [];
  private aheadJson: (string | null)[] = [];
  private aheadAt = 0;
  private aheadSize = 16;
  private aheadHits = 0;
  private aheadMisses = 0;
  /** the key planByKey last sent on to be parsed, and whether the ledger had no row for it */
  private checked: { key: string; absent: boolean } | null = null;

  constructor(path: string, opts: { lockTimeoutMs?: number } = {}) {
    this.db = openDatabase(path, opts);
    const db = this.db;
    // 4 MB holds the interior pages of every index of a ledger of millions of jobs; a larger cache
    // only raised the peak RSS of a re-run (docs/decisions.md).
    db.pragma('cache_size = -4096');
    this.stmt = {
      // No RETURNING: the new row is built in JavaScript (see insertJob), which costs a fraction of
      // SQLite buffering and better-sqlite3 converting a 27-column result.
      plan: db.prepare(`
        INSERT INTO jobs (key, item_id, doi, canonical_url, urls, expected_sha256, source, state, seen_run, created_at, updated_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)
        ON CONFLICT (key) DO NOTHING`),

      peek: db.prepare('SELECT * FROM jobs WHERE key = ?'),
      // A re-run of a finished manifest is mostly this look-up: SQLite builds the record text
      // itself (fields in RECORD_FIELDS order, as recordFromRow would) instead of a 27-field row.
      peekSkipped: db.prepare(`SELECT rowid, key, ${SKIPPED_JSON} AS json FROM jobs WHERE key = ?`),
      // The rows planned right after a found one, in planning order: a re-run of a manifest asks
      // for them next, and one range read replaces as many random index look-ups.
      readAhead: db.prepare(`SELECT key, ${SKIPPED_JSON} AS json FROM jobs WHERE rowid > ? ORDER BY rowid LIMIT ?`).raw(),
      claim: db.prepare(`
        UPDATE jobs SET state = 'active', lease_owner = @owner, lease_expires_at = @expires, updated_at = @now
        WHERE key = @key AND (state IN (${inList(sourcesOf('active').filter((x) => x !== 'done'))}) OR (state = 'done' AND @reopen = 1)
          OR (state = 'active' AND (lease_expires_at < @now OR lease_owner = @steal)))`),
      partGet: db.prepare('SELECT url, etag, last_modified, total FROM parts WHERE job_key = ?'),
      partSave: db.prepare(`INSERT OR REPLACE INTO parts (job_key, url, etag, last_modified, total, started_at) VALUES (@job, @url, @etag, @last_modified, @total, @now)`),
      partDrop: db.prepare('DELETE FROM parts WHERE job_key = ?'),
      renew: db.prepare(`UPDATE jobs SET lease_expires_at = @expires WHERE lease_owner = @owner AND state = 'active'`),
      // Positional: binding 18 named parameters looks each one up on the object by name.
      finish: db.prepare(`
        UPDATE jobs SET state = ?, status = ?, reason = ?, http_status = ?, url = ?, final_url = ?, sha256 = ?, bytes = ?, path = ?,
          content_type = ?, etag = ?, last_modified = ?, resumed_from = ?, attempts = ?, elapsed_ms = ?, message = ?, next_attempt_at = ?,
          failed_runs = CASE WHEN ? = 'failed' THEN failed_runs + 1 ELSE 0 END,
          lease_owner = NULL, lease_expires_at = NULL, updated_at = ?
        WHERE key = ? AND state = 'active' AND lease_owner = ?`),
      invalidSave: db.prepare(`INSERT INTO invalid_lines (source, message, run_id, seen_at) VALUES (?, ?, ?, ?)
        ON CONFLICT (source, message) DO UPDATE SET seen_at = excluded.seen_at`),
      invalidKnown: db.prepare('SELECT 1 FROM invalid_lines WHERE source = ? AND message = ?'),
      invalidAll: db.prepare('SELECT source, message, run_id, seen_at FROM invalid_lines ORDER BY seen_at, source'),
      release: db.prepare(`
        UPDATE jobs SET state = 'pending', lease_owner = NULL, lease_expires_at = NULL, updated_at = @now
        WHERE key = @key AND state = 'active' AND lease_owner = @owner`),
      attempt: db.prepare(`
        INSERT INTO attempts (job_key, run_id, url, final_url, http_status, bytes, elapsed_ms, error, resume_from, resume_decision, started_at,
          sha256, path, fsync_ms, dedup, throughput_bps)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      opGet: db.prepare('SELECT state, result FROM ops WHERE key = ?'),
      opNew: db.prepare(`INSERT INTO ops (key, job_key, kind, state, owner, detail, created_at, updated_at) VALUES (?, ?, ?, 'started', ?, ?, ?, ?)
        ON CONFLICT (key) DO NOTHING`),
      opRetake: db.prepare(`UPDATE ops SET owner = ?, updated_at = ? WHERE key = ? AND state = 'started'`),
      opDone: db.prepare(`INSERT INTO ops (key, job_key, kind, state, owner, detail, result, created_at, updated_at) VALUES (?, ?, ?, 'done', ?, ?, ?, ?, ?)
        ON CONFLICT (key) DO UPDATE SET state = 'done', owner = excluded.owner, result = excluded.result, updated_at = excluded.updated_at`),
      opFinish: db.prepare(`UPDATE ops SET state = 'done', result = @result, updated_at = @now WHERE key = @key`),
      heldKeys: db.prepare(`SELECT key FROM jobs WHERE lease_owner = ? AND state = 'active'`),
      holds: db.prepare(`SELECT 1 FROM jobs WHERE key = @key AND lease_owner = @owner AND state = 'active' AND lease_expires_at >= @now`),
      opsIn: db.prepare('SELECT key, job_key, kind, state, detail, result, owner FROM ops WHERE state = ? ORDER BY created_at'),
      opDrop: db.prepare('DELETE FROM ops WHERE key = ?'),
      unrecorded: db.prepare(`SELECT o.key, o.job_key, o.kind, o.state, o.detail, o.result, o.owner FROM ops o JOIN jobs j ON j.key = o.job_key
        WHERE o.kind = 'finalize' AND o.state = 'done' AND j.state IN ('pending', 'failed')`),
      partKeys: db.prepare('SELECT job_key FROM parts'),
      doneBySha: db.prepare(`SELECT key FROM jobs WHERE sha256 = ? AND state = 'done'`),
      jobsIn: db.prepare('SELECT * FROM jobs WHERE state = ?'),
      hosts: db.prepare('SELECT host, breaker_state, open_until, cooldown_until, failures, last_error FROM hosts'),
      host: db.prepare('SELECT host, breaker_state, open_until, cooldown_until, failures, last_error, updated_at FROM hosts WHERE host = ?'),
      hostSave: db.prepare(`INSERT OR REPLACE INTO hosts (host, breaker_state, open_until, cooldown_until, failures, last_error, updated_at)
        VALUES (@host, @breaker_state, @open_until, @cooldown_until, @failures, @last_error, @now)`),
      runBegin: db.prepare('INSERT INTO runs (id, started_at, argv) VALUES (?, ?, ?)'),
      runEnd: db.prepare('UPDATE runs SET ended_at = ?, counts = ?, exit_code = ? WHERE id = ?'),
      all: db.prepare('SELECT * FROM jobs ORDER BY created_at, key'),
    };
  }

  /** Opens (or continues) the current write group; commits after LEDGER_BATCH writes or a few ms. */
  private write<T>(fn: () => T): T {
    if (this.pending === 0) {
      this.db.exec('BEGIN IMMEDIATE');
      this.timer = setTimeout(() => this.flush(), COMMIT_AFTER_MS);
    }
    this.pending += 1;
    try {
      return fn();
    } finally {
      if (this.pending >= LEDGER_BATCH) this.flush();
    }
  }

  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.pending === 0) return;
    this.pending = 0;
    const waiting = this.waiting;
    this.waiting = [];
    try {
      this.db.exec('COMMIT');
    } catch (err) {
      for (const w of waiting) w.reject(err as Error);
      throw err;
    }
    for (const w of waiting) w.resolve();
  }

  /**
   * Resolves once every write made so far is committed. A waiter brings the group's commit forward
   * to the end of this turn of the event loop: the writes of that turn still share one commit.
   */
  committed(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    if (this.waiting.length === 0) setImmediate(() => this.flushFor(this.waiting));
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  /** The commit a waiter asked for, unless the group was committed meanwhile (by size or timer). */
  private flushFor(waiting: readonly unknown[]): void {
    if (this.waiting === waiting) this.flush();
  }

  beginRun(argv: readonly string[], now: number): void {
    this.write(() => this.stmt.runBegin.run(this.runId, now, JSON.stringify(argv)));
  }

  endRun(counts: Record<string, number>, exitCode: number, now: number): void {
    this.write(() => this.stmt.runEnd.run(now, JSON.stringify(counts), exitCode, this.runId));
  }

  /**
   * The plan of an item known only by its key, when that is all it takes: a repeated key, or a
   * done job's `skipped` record. Null sends the line on to be parsed and planned; plan() then
   * reuses what was found here instead of looking again.
   */
  planByKey(key: string, source: string): Extract<PlanResult, { kind: 'duplicate' | 'skipped' }> | null {
    if (!this.seen.add(key)) return { kind: 'duplicate' };
    const quick = this.skippedRow(key);
    if (quick?.json) return { kind: 'skipped', json: skippedJson(quick.json, source) };
    this.checked = { key, absent: quick === undefined };
    return null;
  }

  plan(item: Item, now: number, opts: PlanOptions = {}): PlanResult {
    const checked = this.checked?.key === item.key ? this.checked : null;
    this.checked = null;
    let absent = checked?.absent ?? false;
    if (!checked && !this.seen.add(item.key)) return { kind: 'duplicate' };
    if (!checked && opts.skippedRecord) {
      const quick = this.skippedRow(item.key);
      if (quick?.json) return { kind: 'skipped', json: skippedJson(quick.json, item.source) };
      absent = quick === undefined;
    }
    // A job just looked up and not found is inserted without a second look-up (the insert itself
    // handles another process planning it meanwhile).
    const known = absent ? undefined : (this.stmt.peek.get(item.key) as JobRow | undefined);
    const row =
      known ??
      this.insertJob(item, now) ??
      // another process planned it between the look-up and the insert
      (this.stmt.peek.get(item.key) as JobRow);
    if (row.state === 'done') return { kind: 'done', row };
    if (row.state === 'failed' && !opts.retryFailed && (row.next_attempt_at === null || row.next_attempt_at > now)) return { kind: 'failed', row };
    if (row.state === 'active' && (row.lease_expires_at ?? 0) >= now && !isDeadLocalOwner(row.lease_owner)) return { kind: 'held', row };
    return { kind: 'work', row };
  }

  /** The row of a job just planned, as the insert stored it; undefined when it already existed. */
  private insertJob(item: Item, now: number): JobRow | undefined {
    const canonical = item.candidates[0]?.canonical ?? item.blocked[0] ?? null;
    const urls = JSON.stringify([...item.candidates.map((c) => c.canonical), ...item.blocked]);
    const inserted = this.write(() => this.stmt.plan.run(item.key, item.id, item.doi, canonical, urls, item.expectedSha256, item.source, this.runId, now, now).changes === 1);
    if (!inserted) return undefined;
    return {
      key: item.key, item_id: item.id, doi: item.doi, canonical_url: canonical, urls, expected_sha256: item.expectedSha256, source: item.source,
      state: 'pending', status: null, reason: null, http_status: null, url: null, final_url: null, sha256: null, bytes: null, path: null,
      content_type: null, etag: null, last_modified: null, resumed_from: null, attempts: 0, elapsed_ms: null, lease_owner: null,
      lease_expires_at: null, message: null, next_attempt_at: null, failed_runs: 0, seen_run: this.runId, created_at: now, updated_at: now,
    } as JobRow;
  }

  /**
   * A job's row for the skipped fast path: from the read-ahead when the manifest follows the order
   * the jobs were planned in (a re-run), else by key, reading ahead from there. The read-ahead
   * grows while it is used and stops when the manifest's order is another one.
   */
  private skippedRow(key: string): { json: string | null } | undefined {
    // A re-run meets the jobs in the order they were planned: the next row read ahead is this one.
    const at = this.aheadAt;
    if (at < this.aheadKeys.length && this.aheadKeys[at] === key) {
      this.aheadAt = at + 1;
      this.aheadHits += 1;
      return { json: this.aheadJson[at]! };
    }
    const row = this.stmt.peekSkipped.get(key) as SkippedRow | undefined;
    if (!row) return undefined;
    this.aheadMisses += 1;
    const used = this.aheadHits;
    this.aheadHits = 0;
    if (this.aheadSize > 0 && used * 2 >= this.aheadSize) this.aheadSize = Math.min(READ_AHEAD_MAX, this.aheadSize * 2);
    else if (this.aheadSize > 0) this.aheadSize = Math.floor(this.aheadSize / 4);
    // Switched off, it tries again now and then, in case the manifest reaches an ordered stretch.
    else if (this.aheadMisses % 1024 === 0) this.aheadSize = 16;
    this.aheadKeys = [];
    this.aheadJson = [];
    this.aheadAt = 0;
    if (this.aheadSize > 0) {
      for (const [k, json] of this.stmt.readAhead.all(row.rowid, this.aheadSize) as [string, string | null][]) {
        this.aheadKeys.push(k);
        this.aheadJson.push(json);
      }
    }
    return row;
  }

  /** Stores an invalid manifest line; true when this line (source and message) was not known before. */
  invalidLine(source: string, message: string, now: number): boolean {
    const known = this.stmt.invalidKnown.get(source, message) !== undefined;
    this.write(() => this.stmt.invalidSave.run(source, message, this.runId, now));
    return !known;
  }

  invalidLines(): InvalidLineRow[] {
    this.flush();
    return this.stmt.invalidAll.all() as InvalidLineRow[];
  }

  claim(key: string, owner: string, now: number, ttlMs: number, opts: ClaimOptions = {}): boolean {
    const params = { key, owner, now, expires: now + ttlMs, reopen: opts.reopen ? 1 : 0, steal: opts.steal ?? null };
    return this.write(() => this.stmt.claim.run(params).changes === 1);
  }

  getPart(jobKey: string): PartRow | undefined {
    return this.stmt.partGet.get(jobKey) as PartRow | undefined;
  }

  savePart(jobKey: string, part: PartRow, now: number): void {
    this.write(() => this.stmt.partSave.run({ ...part, job: jobKey, now }));
  }

  dropPart(jobKey: string): void {
    this.write(() => this.stmt.partDrop.run(jobKey));
  }

  renew(owner: string, now: number, ttlMs: number): number {
    return this.write(() => this.stmt.renew.run({ owner, expires: now + ttlMs }).changes);
  }

  finish(key: string, owner: string, outcome: Outcome, now: number): boolean {
    const o = outcome;
    return this.write(
      () =>
        this.stmt.finish.run(o.state, o.status, o.reason, o.http_status, o.url, o.final_url, o.sha256, o.bytes, o.path, o.content_type, o.etag, o.last_modified, o.resumed_from, o.attempts, o.elapsed_ms, o.message ?? null, o.next_attempt_at ?? null, o.state, now, key, owner)
          .changes === 1,
    );
  }

  release(key: string, owner: string, now: number): boolean {
    return this.write(() => this.stmt.release.run({ key, owner, now }).changes === 1);
  }

  recordAttempt(a: AttemptRow): void {
    const throughput = a.elapsed_ms > 0 ? Math.round((a.bytes * 1000) / a.elapsed_ms) : null;
    this.write(() =>
      this.stmt.attempt.run(a.job_key, this.runId, a.url, a.final_url, a.http_status, a.bytes, a.elapsed_ms, a.error, a.resume_from, a.resume_decision, a.started_at, a.sha256 ?? null, a.path ?? null, a.fsync_ms ?? null, a.dedup ?? null, throughput),
    );
  }

  /** An op already done is replayed from its stored result instead of running again. */
  beginOp(key: string, jobKey: string, kind: OpRow['kind'], owner: string, now: number, detail: string | null = null): OpResult {
    return this.write(() => {
      // Almost every op is new: one insert, and a look-up only when the key was there already.
      if (this.stmt.opNew.run(key, jobKey, kind, owner, detail, now, now).changes === 1) return { state: 'new', result: null };
      const existing = this.stmt.opGet.get(key) as { state: 'started' | 'done'; result: string | null };
      if (existing.state === 'done') return { state: 'done', result: existing.result ? JSON.parse(existing.result) : null };
      this.stmt.opRetake.run(owner, now, key);
      return { state: 'started', result: null };
    });
  }

  finishOp(key: string, result: unknown, now: number): void {
    this.write(() => this.stmt.opFinish.run({ key, result: JSON.stringify(result), now }));
  }

  recordOp(key: string, jobKey: string, kind: OpRow['kind'], owner: string, now: number, detail: string | null, result: unknown): void {
    this.write(() => this.stmt.opDone.run(key, jobKey, kind, owner, detail, JSON.stringify(result), now, now));
  }

  heldKeys(owner: string): Set<string> {
    return new Set((this.stmt.heldKeys.all(owner) as { key: string }[]).map((r) => r.key));
  }

  holds(key: string, owner: string, now: number): boolean {
    return this.stmt.holds.get({ key, owner, now }) !== undefined;
  }

  repair(key: string, from: JobState, to: JobState, patch: RepairPatch, now: number): boolean {
    if (!REPAIRS[from].includes(to)) throw new Error(`repair ${from} -> ${to} is not allowed`);
    const fields = Object.keys(patch).filter((f) => REPAIR_FIELDS.has(f));
    const sets = [...fields.map((f) => `${f} = @${f}`), 'state = @to', 'lease_owner = NULL', 'lease_expires_at = NULL', 'updated_at = @now'];
    const sql = `UPDATE jobs SET ${sets.join(', ')} WHERE key = @key AND state = @from`;
    return this.write(() => this.db.prepare(sql).run({ ...patch, key, from, to, now }).changes === 1);
  }

  ops(state: OpRow['state']): OpRow[] {
    this.flush();
    return this.stmt.opsIn.all(state) as OpRow[];
  }

  unrecordedFinalizes(): OpRow[] {
    this.flush();
    return this.stmt.unrecorded.all() as OpRow[];
  }

  partKeys(): string[] {
    this.flush();
    return (this.stmt.partKeys.all() as { job_key: string }[]).map((r) => r.job_key);
  }

  doneKeysBySha(sha256: string): string[] {
    return (this.stmt.doneBySha.all(sha256) as { key: string }[]).map((r) => r.key);
  }

  /** Materialized, so the caller may write to the ledger while going through them. */
  jobsIn(state: JobState): IterableIterator<JobRow> {
    this.flush();
    return (this.stmt.jobsIn.all(state) as JobRow[])[Symbol.iterator]();
  }

  dropOp(key: string): void {
    this.write(() => this.stmt.opDrop.run(key));
  }

  job(key: string): JobRow | undefined {
    return this.stmt.peek.get(key) as JobRow | undefined;
  }

  hosts(): Map<string, HostRow> {
    return new Map((this.stmt.hosts.all() as HostRow[]).map((r) => [r.host, r]));
  }

  host(name: string): (HostRow & { updated_at: number }) | undefined {
    return this.stmt.host.get(name) as (HostRow & { updated_at: number }) | undefined;
  }

  saveHost(row: HostRow, now: number): void {
    this.write(() => this.stmt.hostSave.run({ ...row, now }));
  }

  recentFailures(since: number): Map<string, number> {
    this.flush();
    const out = new Map<string, number>();
    for (const { url } of this.db.prepare('SELECT url FROM attempts WHERE error IS NOT NULL AND started_at >= ?').iterate(since) as IterableIterator<{ url: string }>) {
      let host: string;
      try {
        host = new URL(url).hostname;
      } catch {
        continue;
      }
      out.set(host, (out.get(host) ?? 0) + 1);
    }
    return out;
  }

  runs(): RunRow[] {
    this.flush();
    return this.db.prepare('SELECT * FROM runs ORDER BY started_at').all() as RunRow[];
  }

  attempts(): IterableIterator<Record<string, unknown>> {
    this.flush();
    return this.db.prepare('SELECT a.*, j.item_id FROM attempts a LEFT JOIN jobs j ON j.key = a.job_key ORDER BY a.id').iterate() as IterableIterator<Record<string, unknown>>;
  }

  counts(): StatusCounts {
    this.flush();
    const group = (col: string, where = ''): Record<string, number> =>
      Object.fromEntries(
        (this.db.prepare(`SELECT ${col} AS k, COUNT(*) AS n FROM jobs ${where} GROUP BY ${col}`).all() as { k: string; n: number }[]).map((r) => [r.k ?? 'none', r.n]),
      );
    const store = this.db
      .prepare(`SELECT COUNT(*) AS objects, COALESCE(SUM(bytes), 0) AS bytes FROM (SELECT sha256, MAX(bytes) AS bytes FROM jobs WHERE state = 'done' AND sha256 IS NOT NULL GROUP BY sha256)`)
      .get() as { objects: number; bytes: number };
    const scalar = (sql: string): number => (this.db.prepare(sql).pluck().get() as number | undefined) ?? 0;
    return {
      byState: group('state'),
      // A job never finished has no status yet: its state says where it is.
      byStatus: group('COALESCE(status, state)'),
      byReason: group('reason', 'WHERE reason IS NOT NULL'),
      objects: store.objects,
      bytesStored: store.bytes,
      failedPermanently: scalar("SELECT COUNT(*) FROM jobs WHERE state = 'failed' AND next_attempt_at IS NULL"),
      invalidLines: scalar('SELECT COUNT(*) FROM invalid_lines'),
    };
  }

  jobs(): IterableIterator<JobRow> {
    this.flush();
    return this.stmt.all.iterate() as IterableIterator<JobRow>;
  }

  close(): void {
    this.flush();
    this.db.close();
    this.seen.close();
  }
}

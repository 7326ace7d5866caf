import type Database from 'better-sqlite3';
import type { Item } from '../../manifest/parse.js';
import { RECORD_FIELDS } from '../../record.js';
import { LeaseCache } from '../leases.js';
import { ReadAhead } from '../read-ahead.js';
import { SeenKeys } from '../seen.js';
import { OUTCOME_FIELDS, pendingJob, planOf, REPAIRS, sourcesOf, type ClaimOptions, type JobRow, type JobState, type Outcome, type PlanOptions, type PlanResult, type RepairPatch } from '../types.js';
import type { GroupCommit } from './group-commit.js';

/** How each record field reads from a done job's row in its `skipped` record (the rest by name). */
const SKIPPED_COLUMNS: Partial<Record<(typeof RECORD_FIELDS)[number], string>> = {
  id: 'item_id', url: 'coalesce(url, canonical_url)', status: "'skipped'", resumed_from: '0', attempts: '0', elapsed_ms: '0',
};
/** The `skipped` record of a done job without its source (added per line), in RECORD_FIELDS order. */
const SKIPPED_JSON = `CASE WHEN state = 'done' THEN json_object(${RECORD_FIELDS.filter((f) => f !== 'source')
  .map((f) => `'${f}', ${SKIPPED_COLUMNS[f] ?? f}`)
  .join(', ')}) END`;
const REPAIR_FIELDS = new Set<string>(OUTCOME_FIELDS);

interface SkippedRow {
  rowid: number;
  key: string;
  json: string | null;
}

/** The record built in SQL lacks only its last field, the line's source: it goes before the brace. */
function skippedJson(json: string, source: string): string {
  return `${json.slice(0, -1)},"source":${JSON.stringify(source)}}`;
}

function inList(states: readonly string[]): string {
  return states.map((s) => `'${s}'`).join(', ');
}

function statements(db: Database.Database) {
  return {
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
    renew: db.prepare(`UPDATE jobs SET lease_expires_at = @expires WHERE lease_owner = @owner AND state = 'active' RETURNING key`).pluck(),
    // Positional: binding 20 named parameters looks each one up on the object by name.
    finish: db.prepare(`
      UPDATE jobs SET state = ?, ${OUTCOME_FIELDS.map((f) => `${f} = ?`).join(', ')}, message = ?, next_attempt_at = ?,
        failed_runs = CASE WHEN ? = 'failed' THEN failed_runs + 1 ELSE 0 END,
        lease_owner = NULL, lease_expires_at = NULL, updated_at = ?
      WHERE key = ? AND state = 'active' AND lease_owner = ?`),
    release: db.prepare(`
      UPDATE jobs SET state = 'pending', lease_owner = NULL, lease_expires_at = NULL, updated_at = @now
      WHERE key = @key AND state = 'active' AND lease_owner = @owner`),
    holds: db.prepare(`SELECT 1 FROM jobs WHERE key = @key AND lease_owner = @owner AND state = 'active' AND lease_expires_at >= @now`),
    doneBySha: db.prepare(`SELECT key FROM jobs WHERE sha256 = ? AND state = 'done'`),
    jobsIn: db.prepare('SELECT * FROM jobs WHERE state = ?'),
  };
}

/**
 * The jobs table: planning (with the read-ahead that makes a re-run of a finished manifest fast),
 * leases, outcomes and reconcile's repairs. Every write after a claim names the lease owner and is
 * refused when the lease is no longer held.
 */
export class JobsTable {
  private readonly stmt;
  private readonly seen = new SeenKeys();
  /** a done job's skipped JSON (null for other states), read ahead in planning order */
  private readonly ahead = new ReadAhead<string | null>();
  /** the key planByKey last sent on to be parsed, and whether the ledger had no row for it */
  private checked: { key: string; absent: boolean } | null = null;
  /** the leases this process wrote (see LeaseCache: every write of one holds the write lock until it commits) */
  private readonly leases = new LeaseCache();

  constructor(private readonly db: Database.Database, private readonly group: GroupCommit, private readonly runId: string) {
    this.stmt = statements(db);
    // A failed commit takes its claims and renewals with it: nothing held is known any more.
    group.onFailedCommit(() => this.leases.clear());
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
    return planOf(row, now, opts);
  }

  /** The row of a job just planned, as the insert stored it; undefined when it already existed. */
  private insertJob(item: Item, now: number): JobRow | undefined {
    const row = { ...pendingJob(item, now), seen_run: this.runId };
    const inserted = this.group.write(() => this.stmt.plan.run(item.key, item.id, item.doi, row.canonical_url, row.urls, item.expectedSha256, item.source, this.runId, now, now).changes === 1);
    return inserted ? row : undefined;
  }

  /**
   * A job's row for the skipped fast path: from the read-ahead when the manifest follows the order
   * the jobs were planned in (a re-run), else by key, reading ahead from there. The read-ahead
   * grows while it is used and stops when the manifest's order is another one.
   */
  private skippedRow(key: string): { json: string | null } | undefined {
    const next = this.ahead.next(key);
    if (next !== undefined) return { json: next };
    const row = this.stmt.peekSkipped.get(key) as SkippedRow | undefined;
    if (!row) return undefined;
    const size = this.ahead.missed();
    if (size > 0) for (const [k, json] of this.stmt.readAhead.all(row.rowid, size) as [string, string | null][]) this.ahead.fill(k, json);
    return row;
  }

  claim(key: string, owner: string, now: number, ttlMs: number, opts: ClaimOptions = {}): boolean {
    const params = { key, owner, now, expires: now + ttlMs, reopen: opts.reopen ? 1 : 0, steal: opts.steal ?? null };
    const claimed = this.group.write(() => this.stmt.claim.run(params).changes === 1);
    if (claimed) this.leases.claimed(key, owner, params.expires);
    return claimed;
  }

  /** Extends every lease `owner` still holds; one it no longer holds in the table is forgotten. */
  renew(owner: string, now: number, ttlMs: number): number {
    const expires = now + ttlMs;
    const renewed = new Set(this.group.write(() => this.stmt.renew.all({ owner, expires }) as string[]));
    this.leases.renewed(owner, renewed, expires);
    return renewed.size;
  }

  finish(key: string, owner: string, o: Outcome, now: number): boolean {
    const values = OUTCOME_FIELDS.map((f) => o[f] ?? null);
    this.leases.forget(key, owner);
    return this.group.write(() => this.stmt.finish.run(o.state, ...values, o.message ?? null, o.next_attempt_at ?? null, o.state, now, key, owner).changes === 1);
  }

  release(key: string, owner: string, now: number): boolean {
    this.leases.forget(key, owner);
    return this.group.write(() => this.stmt.release.run({ key, owner, now }).changes === 1);
  }

  holds(key: string, owner: string, now: number): boolean {
    return this.leases.holds(key, owner, now);
  }

  holdsInTable(key: string, owner: string, now: number): boolean {
    return this.stmt.holds.get({ key, owner, now }) !== undefined;
  }

  repair(key: string, from: JobState, to: JobState, patch: RepairPatch, now: number): boolean {
    if (!REPAIRS[from].includes(to)) throw new Error(`repair ${from} -> ${to} is not allowed`);
    const fields = Object.keys(patch).filter((f) => REPAIR_FIELDS.has(f));
    const sets = [...fields.map((f) => `${f} = @${f}`), 'state = @to', 'lease_owner = NULL', 'lease_expires_at = NULL', 'updated_at = @now'];
    const sql = `UPDATE jobs SET ${sets.join(', ')} WHERE key = @key AND state = @from`;
    this.leases.forget(key);
    return this.group.write(() => this.db.prepare(sql).run({ ...patch, key, from, to, now }).changes === 1);
  }

  job(key: string): JobRow | undefined {
    return this.stmt.peek.get(key) as JobRow | undefined;
  }

  doneKeysBySha(sha256: string): string[] {
    return (this.stmt.doneBySha.all(sha256) as { key: string }[]).map((r) => r.key);
  }

  /** Materialized, so the caller may write to the ledger while going through them. */
  jobsIn(state: JobState): IterableIterator<JobRow> {
    this.group.flush();
    return (this.stmt.jobsIn.all(state) as JobRow[])[Symbol.iterator]();
  }

  close(): void {
    this.seen.close();
  }
}

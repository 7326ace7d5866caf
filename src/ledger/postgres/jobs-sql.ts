import type { ClientBase } from 'pg';
import { OUTCOME_FIELDS, REPAIRS, sourcesOf, type JobRow, type JobState, type Outcome, type RepairPatch } from '../types.js';
import { JOB_COLUMNS } from './schema.js';

const REPAIR_FIELDS = new Set<string>(OUTCOME_FIELDS);
const CLAIMABLE = sourcesOf('active')
  .filter((s) => s !== 'done')
  .map((s) => `'${s}'`)
  .join(', ');

/** A job as planning inserts it: the plan's columns, the run that saw it first, and when. */
export type NewJob = Pick<JobRow, 'key' | 'item_id' | 'doi' | 'canonical_url' | 'urls' | 'expected_sha256' | 'source'> & { seen_run: string; now: number };

/** The jobs table's statements, run by the ledger thread on its connection (see pg-worker.ts). */
export const jobsSql = {
  /**
   * The job's row after planning it: inserted pending, or the one already there, then (for one
   * already there) up to `ahead` rows planned after it, in planning order (see ReadAhead).
   */
  async plan(c: ClientBase, { job: j, ahead }: { job: NewJob; ahead: number }): Promise<{ row: JobRow; ahead: JobRow[] }> {
    const inserted = await c.query<JobRow>(
      `INSERT INTO jobs (key, item_id, doi, canonical_url, urls, expected_sha256, source, state, seen_run, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9, $9) ON CONFLICT (key) DO NOTHING RETURNING ${JOB_COLUMNS}`,
      [j.key, j.item_id, j.doi, j.canonical_url, j.urls, j.expected_sha256, j.source, j.seen_run, j.now],
    );
    if (inserted.rows[0]) return { row: inserted.rows[0], ahead: [] };
    if (ahead === 0) return { row: (await jobsSql.job(c, j.key))!, ahead: [] };
    // The row itself first, then the ones after it.
    const rows = (await c.query<JobRow>(`SELECT ${JOB_COLUMNS} FROM jobs WHERE seq >= (SELECT seq FROM jobs WHERE key = $1) ORDER BY seq LIMIT $2`, [j.key, ahead + 1])).rows;
    return { row: rows[0]!, ahead: rows.slice(1) };
  },

  async job(c: ClientBase, key: string): Promise<JobRow | undefined> {
    return (await c.query<JobRow>(`SELECT ${JOB_COLUMNS} FROM jobs WHERE key = $1`, [key])).rows[0];
  },

  /**
   * A row another process is claiming right now (its row lock held) is skipped rather than waited
   * for: that claim wins or fails on its own, and this one reports the job as not claimed.
   */
  async claim(c: ClientBase, a: { key: string; owner: string; now: number; expires: number; reopen: boolean; steal: string | null }): Promise<boolean> {
    const r = await c.query(
      `UPDATE jobs SET state = 'active', lease_owner = $2, lease_expires_at = $3, updated_at = $4
       WHERE key = (SELECT key FROM jobs WHERE key = $1 AND (state IN (${CLAIMABLE}) OR (state = 'done' AND $5::boolean)
         OR (state = 'active' AND (lease_expires_at < $4 OR lease_owner = $6))) FOR UPDATE SKIP LOCKED)`,
      [a.key, a.owner, a.expires, a.now, a.reopen, a.steal],
    );
    return r.rowCount === 1;
  },

  async renew(c: ClientBase, a: { owner: string; expires: number }): Promise<string[]> {
    await c.query('UPDATE host_permits SET expires_at = $2 WHERE owner = $1', [a.owner, a.expires]);
    const r = await c.query<{ key: string }>(`UPDATE jobs SET lease_expires_at = $2 WHERE lease_owner = $1 AND state = 'active' RETURNING key`, [a.owner, a.expires]);
    return r.rows.map((row) => row.key);
  },

  async finish(c: ClientBase, a: { key: string; owner: string; o: Outcome; now: number }): Promise<boolean> {
    const { o } = a;
    const values = OUTCOME_FIELDS.map((f) => o[f] ?? null);
    const n = OUTCOME_FIELDS.length;
    const sets = OUTCOME_FIELDS.map((f, i) => `${f} = $${i + 2}`).join(', ');
    const r = await c.query(
      `UPDATE jobs SET state = $1, ${sets}, message = $${n + 2}, next_attempt_at = $${n + 3},
         failed_runs = CASE WHEN $1 = 'failed' THEN failed_runs + 1 ELSE 0 END, lease_owner = NULL, lease_expires_at = NULL, updated_at = $${n + 4}
       WHERE key = $${n + 5} AND state = 'active' AND lease_owner = $${n + 6}`,
      [o.state, ...values, o.message ?? null, o.next_attempt_at ?? null, a.now, a.key, a.owner],
    );
    return r.rowCount === 1;
  },

  async release(c: ClientBase, a: { key: string; owner: string; now: number }): Promise<boolean> {
    const r = await c.query(
      `UPDATE jobs SET state = 'pending', lease_owner = NULL, lease_expires_at = NULL, updated_at = $3 WHERE key = $1 AND state = 'active' AND lease_owner = $2`,
      [a.key, a.owner, a.now],
    );
    return r.rowCount === 1;
  },

  async holds(c: ClientBase, a: { key: string; owner: string; now: number }): Promise<boolean> {
    const r = await c.query(`SELECT 1 FROM jobs WHERE key = $1 AND lease_owner = $2 AND state = 'active' AND lease_expires_at >= $3`, [a.key, a.owner, a.now]);
    return r.rowCount === 1;
  },

  async repair(c: ClientBase, a: { key: string; from: JobState; to: JobState; patch: RepairPatch; now: number }): Promise<boolean> {
    if (!REPAIRS[a.from].includes(a.to)) throw new Error(`repair ${a.from} -> ${a.to} is not allowed`);
    const fields = Object.keys(a.patch).filter((f) => REPAIR_FIELDS.has(f));
    const sets = [...fields.map((f, i) => `${f} = $${i + 5}`), 'state = $3', 'lease_owner = NULL', 'lease_expires_at = NULL', 'updated_at = $4'];
    const values = fields.map((f) => a.patch[f as keyof RepairPatch] ?? null);
    const r = await c.query(`UPDATE jobs SET ${sets.join(', ')} WHERE key = $1 AND state = $2`, [a.key, a.from, a.to, a.now, ...values]);
    return r.rowCount === 1;
  },

  async doneKeysBySha(c: ClientBase, sha256: string): Promise<string[]> {
    return (await c.query<{ key: string }>(`SELECT key FROM jobs WHERE sha256 = $1 AND state = 'done'`, [sha256])).rows.map((r) => r.key);
  },

  async jobsIn(c: ClientBase, state: JobState): Promise<JobRow[]> {
    return (await c.query<JobRow>(`SELECT ${JOB_COLUMNS} FROM jobs WHERE state = $1`, [state])).rows;
  },
};

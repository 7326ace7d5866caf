import type { ClientBase } from 'pg';
import type { AttemptRow, HostRow, OpResult, OpRow, PartRow } from '../types.js';

const OP_COLUMNS = 'key, job_key, kind, state, detail, result, owner';
const ATTEMPT_COLUMNS = ['job_key', 'run_id', 'url', 'final_url', 'http_status', 'bytes', 'elapsed_ms', 'error', 'resume_from', 'resume_decision', 'started_at', 'sha256', 'path', 'fsync_ms', 'dedup', 'throughput_bps'] as const;

interface OpBegin {
  key: string;
  jobKey: string;
  kind: OpRow['kind'];
  owner: string;
  now: number;
  detail: string | null;
}

/** The ops, parts, attempts, runs and hosts tables' statements (see pg-worker.ts). */
export const rowsSql = {
  /** An op already done is replayed from its stored result instead of running again. */
  async beginOp(c: ClientBase, a: OpBegin): Promise<OpResult> {
    const r = await c.query(
      `INSERT INTO ops (key, job_key, kind, state, owner, detail, created_at, updated_at) VALUES ($1, $2, $3, 'started', $4, $5, $6, $6) ON CONFLICT (key) DO NOTHING`,
      [a.key, a.jobKey, a.kind, a.owner, a.detail, a.now],
    );
    if (r.rowCount === 1) return { state: 'new', result: null };
    const existing = (await c.query<{ state: 'started' | 'done'; result: string | null }>('SELECT state, result FROM ops WHERE key = $1', [a.key])).rows[0]!;
    if (existing.state === 'done') return { state: 'done', result: existing.result ? JSON.parse(existing.result) : null };
    await c.query(`UPDATE ops SET owner = $1, updated_at = $2 WHERE key = $3 AND state = 'started'`, [a.owner, a.now, a.key]);
    return { state: 'started', result: null };
  },

  async finishOp(c: ClientBase, a: { key: string; result: unknown; now: number }): Promise<void> {
    await c.query(`UPDATE ops SET state = 'done', result = $2, updated_at = $3 WHERE key = $1`, [a.key, JSON.stringify(a.result), a.now]);
  },

  async recordOp(c: ClientBase, a: OpBegin & { result: unknown }): Promise<void> {
    await c.query(
      `INSERT INTO ops (key, job_key, kind, state, owner, detail, result, created_at, updated_at) VALUES ($1, $2, $3, 'done', $4, $5, $6, $7, $7)
       ON CONFLICT (key) DO UPDATE SET state = 'done', owner = excluded.owner, result = excluded.result, updated_at = excluded.updated_at`,
      [a.key, a.jobKey, a.kind, a.owner, a.detail, JSON.stringify(a.result), a.now],
    );
  },

  async dropOp(c: ClientBase, key: string): Promise<void> {
    await c.query('DELETE FROM ops WHERE key = $1', [key]);
  },

  async ops(c: ClientBase, state: OpRow['state']): Promise<OpRow[]> {
    return (await c.query<OpRow>(`SELECT ${OP_COLUMNS} FROM ops WHERE state = $1 ORDER BY created_at`, [state])).rows;
  },

  async unrecordedFinalizes(c: ClientBase): Promise<OpRow[]> {
    const cols = OP_COLUMNS.split(', ').map((col) => `o.${col}`).join(', ');
    return (await c.query<OpRow>(`SELECT ${cols} FROM ops o JOIN jobs j ON j.key = o.job_key WHERE o.kind = 'finalize' AND o.state = 'done' AND j.state IN ('pending', 'failed')`)).rows;
  },

  async getPart(c: ClientBase, jobKey: string): Promise<PartRow | undefined> {
    return (await c.query<PartRow>('SELECT url, etag, last_modified, total FROM parts WHERE job_key = $1', [jobKey])).rows[0];
  },

  async savePart(c: ClientBase, a: { jobKey: string; part: PartRow; now: number }): Promise<void> {
    const p = a.part;
    await c.query(
      `INSERT INTO parts (job_key, url, etag, last_modified, total, started_at) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (job_key) DO UPDATE SET url = excluded.url, etag = excluded.etag, last_modified = excluded.last_modified, total = excluded.total, started_at = excluded.started_at`,
      [a.jobKey, p.url, p.etag, p.last_modified, p.total, a.now],
    );
  },

  async dropPart(c: ClientBase, jobKey: string): Promise<void> {
    await c.query('DELETE FROM parts WHERE job_key = $1', [jobKey]);
  },

  async partKeys(c: ClientBase): Promise<string[]> {
    return (await c.query<{ job_key: string }>('SELECT job_key FROM parts')).rows.map((r) => r.job_key);
  },

  async recordAttempt(c: ClientBase, a: { runId: string; attempt: AttemptRow }): Promise<void> {
    const t = a.attempt;
    const throughput = t.elapsed_ms > 0 ? Math.round((t.bytes * 1000) / t.elapsed_ms) : null;
    const values = [t.job_key, a.runId, t.url, t.final_url, t.http_status, t.bytes, t.elapsed_ms, t.error, t.resume_from, t.resume_decision, t.started_at, t.sha256 ?? null, t.path ?? null, t.fsync_ms ?? null, t.dedup ?? null, throughput];
    await c.query(`INSERT INTO attempts (${ATTEMPT_COLUMNS.join(', ')}) VALUES (${ATTEMPT_COLUMNS.map((_, i) => `$${i + 1}`).join(', ')})`, values);
  },

  async beginRun(c: ClientBase, a: { runId: string; argv: readonly string[]; now: number }): Promise<void> {
    await c.query('INSERT INTO runs (id, started_at, argv) VALUES ($1, $2, $3)', [a.runId, a.now, JSON.stringify(a.argv)]);
  },

  async endRun(c: ClientBase, a: { runId: string; counts: Record<string, number>; exitCode: number; now: number }): Promise<void> {
    await c.query('UPDATE runs SET ended_at = $1, counts = $2, exit_code = $3 WHERE id = $4', [a.now, JSON.stringify(a.counts), a.exitCode, a.runId]);
  },

  /** Stores an invalid manifest line; true when this line (source and message) was not known before. */
  async invalidLine(c: ClientBase, a: { source: string; message: string; runId: string; now: number }): Promise<boolean> {
    const r = await c.query<{ fresh: boolean }>(
      `INSERT INTO invalid_lines (source, message, run_id, seen_at) VALUES ($1, $2, $3, $4)
       ON CONFLICT (source, message) DO UPDATE SET seen_at = excluded.seen_at RETURNING (xmax = 0) AS fresh`,
      [a.source, a.message, a.runId, a.now],
    );
    return r.rows[0]!.fresh;
  },

  async host(c: ClientBase, name: string): Promise<(HostRow & { updated_at: number }) | undefined> {
    return (await c.query<HostRow & { updated_at: number }>('SELECT host, breaker_state, open_until, cooldown_until, failures, last_error, updated_at FROM hosts WHERE host = $1', [name])).rows[0];
  },

  async saveHost(c: ClientBase, a: { row: HostRow; now: number }): Promise<void> {
    const h = a.row;
    await c.query(
      `INSERT INTO hosts (host, breaker_state, open_until, cooldown_until, failures, last_error, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (host) DO UPDATE SET breaker_state = excluded.breaker_state, open_until = excluded.open_until, cooldown_until = excluded.cooldown_until,
         failures = excluded.failures, last_error = excluded.last_error, updated_at = excluded.updated_at`,
      [h.host, h.breaker_state, h.open_until, h.cooldown_until, h.failures, h.last_error, a.now],
    );
  },

  /** Null: the host is taken now (the row lock orders two processes' takes). Else when it is next free. */
  async takeSlot(c: ClientBase, a: { host: string; spacingMs: number; now: number }): Promise<number | null> {
    // Taken, as most asks of a host shared with others find it: a read, no row lock.
    const seen = (await c.query<{ next_at: number }>('SELECT next_at FROM host_pace WHERE host = $1', [a.host])).rows[0]?.next_at;
    if (seen !== undefined && seen > a.now) return seen;
    const r = await c.query(
      `INSERT INTO host_pace (host, next_at) VALUES ($1, $2::float8 + $3::float8)
       ON CONFLICT (host) DO UPDATE SET next_at = $2::float8 + $3::float8 WHERE host_pace.next_at <= $2::float8 RETURNING next_at`,
      [a.host, a.now, a.spacingMs],
    );
    if (r.rowCount === 1) return null;
    return (await c.query<{ next_at: number }>('SELECT next_at FROM host_pace WHERE host = $1', [a.host])).rows[0]?.next_at ?? 0;
  },

  async takePermit(c: ClientBase, a: { host: string; owner: string; cap: number; now: number; expires: number }): Promise<number | null> {
    const r = await c.query<{ id: number | null }>('SELECT docstokg_take_permit($1, $2, $3, $4, $5) AS id', [a.host, a.owner, a.expires, a.now, a.cap]);
    return r.rows[0]!.id;
  },

  async freePermit(c: ClientBase, id: number): Promise<void> {
    await c.query('DELETE FROM host_permits WHERE id = $1', [id]);
  },

  async permitOwners(c: ClientBase): Promise<string[]> {
    return (await c.query<{ owner: string }>('SELECT DISTINCT owner FROM host_permits')).rows.map((r) => r.owner);
  },

  async dropPermitsOf(c: ClientBase, owners: string[]): Promise<number> {
    return (await c.query('DELETE FROM host_permits WHERE owner = ANY($1)', [owners])).rowCount ?? 0;
  },

  async countFailure(c: ClientBase, a: { host: string; failed: boolean; now: number }): Promise<number> {
    const r = await c.query<{ failures: number }>(
      `INSERT INTO hosts (host, breaker_state, failures, updated_at) VALUES ($1, 'closed', CASE WHEN $2::boolean THEN 1 ELSE 0 END, $3)
       ON CONFLICT (host) DO UPDATE SET failures = CASE WHEN $2::boolean THEN hosts.failures + 1 ELSE 0 END, updated_at = $3 RETURNING failures`,
      [a.host, a.failed, a.now],
    );
    return r.rows[0]!.failures;
  },

  async hostNotBefore(c: ClientBase, a: { host: string; at: number }): Promise<void> {
    await c.query('UPDATE host_pace SET next_at = GREATEST(next_at, $2::float8) WHERE host = $1', [a.host, a.at]);
  },
};

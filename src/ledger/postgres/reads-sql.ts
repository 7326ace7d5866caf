import type { ClientBase } from 'pg';
import type { CacheRow } from '../http-cache.js';
import type { HostRow, InvalidLineRow, JobRow, RunRow, StatusCounts } from '../types.js';
import { JOB_COLUMNS } from './schema.js';

/** Rows a report reads at a time (export goes through a ledger of any size in pages). */
export const PAGE_ROWS = 1000;

async function grouped(c: ClientBase, col: string, where = ''): Promise<Record<string, number>> {
  const r = await c.query<{ k: string | null; n: number }>(`SELECT ${col} AS k, COUNT(*) AS n FROM jobs ${where} GROUP BY ${col}`);
  return Object.fromEntries(r.rows.map((row) => [row.k ?? 'none', row.n]));
}

/** What `status`, `export` and the HTTP cache read, and the cache's writes (see pg-worker.ts). */
export const readsSql = {
  async counts(c: ClientBase): Promise<StatusCounts> {
    const store = (
      await c.query<{ objects: number; bytes: number }>(
        `SELECT COUNT(*) AS objects, COALESCE(SUM(bytes), 0)::float8 AS bytes FROM (SELECT sha256, MAX(bytes) AS bytes FROM jobs WHERE state = 'done' AND sha256 IS NOT NULL GROUP BY sha256) s`,
      )
    ).rows[0]!;
    const scalar = async (sql: string): Promise<number> => (await c.query<{ n: number }>(sql)).rows[0]?.n ?? 0;
    return {
      byState: await grouped(c, 'state'),
      byStatus: await grouped(c, 'COALESCE(status, state)'),
      byReason: await grouped(c, 'reason', 'WHERE reason IS NOT NULL'),
      byResolver: await grouped(c, "COALESCE(resolver, 'manifest')", "WHERE state = 'done'"),
      objects: store.objects,
      bytesStored: store.bytes,
      failedPermanently: await scalar("SELECT COUNT(*) AS n FROM jobs WHERE state = 'failed' AND next_attempt_at IS NULL"),
      invalidLines: await scalar('SELECT COUNT(*) AS n FROM invalid_lines'),
    };
  },

  /** One page of jobs in export order, after the (created_at, key) given. */
  async jobsPage(c: ClientBase, after: [number, string] | null): Promise<JobRow[]> {
    const r = after
      ? await c.query<JobRow>(`SELECT ${JOB_COLUMNS} FROM jobs WHERE (created_at, key) > ($1, $2) ORDER BY created_at, key LIMIT ${PAGE_ROWS}`, after)
      : await c.query<JobRow>(`SELECT ${JOB_COLUMNS} FROM jobs ORDER BY created_at, key LIMIT ${PAGE_ROWS}`);
    return r.rows;
  },

  async attemptsPage(c: ClientBase, afterId: number): Promise<Record<string, unknown>[]> {
    return (await c.query(`SELECT a.*, j.item_id FROM attempts a LEFT JOIN jobs j ON j.key = a.job_key WHERE a.id > $1 ORDER BY a.id LIMIT ${PAGE_ROWS}`, [afterId])).rows;
  },

  async runs(c: ClientBase): Promise<RunRow[]> {
    return (await c.query<RunRow>('SELECT * FROM runs ORDER BY started_at')).rows;
  },

  async invalidLines(c: ClientBase): Promise<InvalidLineRow[]> {
    return (await c.query<InvalidLineRow>('SELECT source, message, run_id, seen_at FROM invalid_lines ORDER BY seen_at, source')).rows;
  },

  async hosts(c: ClientBase): Promise<HostRow[]> {
    return (await c.query<HostRow>('SELECT host, breaker_state, open_until, cooldown_until, failures, last_error FROM hosts')).rows;
  },

  async failedAttemptUrls(c: ClientBase, since: number): Promise<string[]> {
    return (await c.query<{ url: string }>('SELECT url FROM attempts WHERE error IS NOT NULL AND started_at >= $1', [since])).rows.map((r) => r.url);
  },

  async cacheFind(c: ClientBase, a: { url: string; method: string }): Promise<CacheRow[]> {
    const r = await c.query<CacheRow>(
      `SELECT id, body, delete_at, status_code, status_message, headers, etag, cache_control, vary, cached_at, stale_at FROM http_cache WHERE url = $1 AND method = $2 ORDER BY delete_at`,
      [a.url, a.method],
    );
    return r.rows;
  },

  async cacheSave(c: ClientBase, a: { id: number | null; url: string; method: string; row: Omit<CacheRow, 'id'> }): Promise<void> {
    const w = a.row;
    const values = [w.body, w.delete_at, w.status_code, w.status_message, w.headers, w.etag, w.cache_control, w.vary, w.cached_at, w.stale_at];
    if (a.id !== null) {
      await c.query(
        `UPDATE http_cache SET body = $1, delete_at = $2, status_code = $3, status_message = $4, headers = $5, etag = $6, cache_control = $7, vary = $8, cached_at = $9, stale_at = $10 WHERE id = $11`,
        [...values, a.id],
      );
    } else {
      await c.query(
        `INSERT INTO http_cache (body, delete_at, status_code, status_message, headers, etag, cache_control, vary, cached_at, stale_at, url, method) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
        [...values, a.url, a.method],
      );
    }
  },

  async cacheDelete(c: ClientBase, url: string): Promise<void> {
    await c.query('DELETE FROM http_cache WHERE url = $1', [url]);
  },

  async cacheExpire(c: ClientBase, now: number): Promise<void> {
    await c.query('DELETE FROM http_cache WHERE delete_at <= $1', [now]);
  },
};

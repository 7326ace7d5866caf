import type Database from 'better-sqlite3';
import { LedgerHttpCache, type CacheRow, type CacheRows } from '../http-cache.js';
import type { GroupCommit } from './group-commit.js';

/** The HTTP cache's rows in the SQLite ledger (see ledger/http-cache.ts); writes join the group commit. */
export class SqliteCacheRows implements CacheRows {
  private readonly stmt;

  constructor(db: Database.Database, private readonly group: GroupCommit) {
    this.stmt = {
      find: db.prepare(`SELECT id, body, delete_at, status_code, status_message, headers, etag, cache_control, vary, cached_at, stale_at
        FROM http_cache WHERE url = ? AND method = ? ORDER BY delete_at`),
      insert: db.prepare(`INSERT INTO http_cache (url, method, body, delete_at, status_code, status_message, headers, etag, cache_control, vary, cached_at, stale_at)
        VALUES (@url, @method, @body, @delete_at, @status_code, @status_message, @headers, @etag, @cache_control, @vary, @cached_at, @stale_at)`),
      update: db.prepare(`UPDATE http_cache SET body = @body, delete_at = @delete_at, status_code = @status_code, status_message = @status_message,
        headers = @headers, etag = @etag, cache_control = @cache_control, vary = @vary, cached_at = @cached_at, stale_at = @stale_at WHERE id = @id`),
      deleteUrl: db.prepare('DELETE FROM http_cache WHERE url = ?'),
      expire: db.prepare('DELETE FROM http_cache WHERE delete_at <= ?'),
    };
  }

  find(url: string, method: string): CacheRow[] {
    return this.stmt.find.all(url, method) as CacheRow[];
  }

  save(id: number | null, url: string, method: string, row: Omit<CacheRow, 'id'>): void {
    this.group.write(() => (id !== null ? this.stmt.update.run({ ...row, id }) : this.stmt.insert.run({ ...row, url, method })));
  }

  deleteUrl(url: string): void {
    this.group.write(() => this.stmt.deleteUrl.run(url));
  }

  expire(now: number): void {
    this.group.write(() => this.stmt.expire.run(now));
  }
}

/** The SQLite ledger's HTTP cache. */
export function sqliteHttpCache(db: Database.Database, group: GroupCommit): LedgerHttpCache {
  return new LedgerHttpCache(new SqliteCacheRows(db, group));
}

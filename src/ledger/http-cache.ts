import { Writable } from 'node:stream';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { CacheStore, HttpCache } from './types.js';

/** Larger answers are not kept: no metadata answer a resolver reads comes near it. */
const MAX_ENTRY_BYTES = 8 * 1024 * 1024;

type Key = Parameters<CacheStore['get']>[0];
type Value = Parameters<CacheStore['createWriteStream']>[1];

/** One stored answer, as a backend keeps it (headers and directives as JSON text, body gzipped). */
export interface CacheRow {
  id: number;
  body: Buffer | null;
  delete_at: number;
  status_code: number;
  status_message: string;
  headers: string | null;
  etag: string | null;
  cache_control: string | null;
  vary: string | null;
  cached_at: number;
  stale_at: number;
}

/** What a ledger backend provides for the cache: its rows by URL and method. */
export interface CacheRows {
  find(url: string, method: string): CacheRow[];
  /** `id` null: a new row */
  save(id: number | null, url: string, method: string, row: Omit<CacheRow, 'id'>): void;
  deleteUrl(url: string): void;
  expire(now: number): void;
}

function sameHeader(a: string | string[] | null | undefined, b: string | string[] | null | undefined): boolean {
  if (a == null || b == null) return a == null && b == null;
  if (Array.isArray(a) || Array.isArray(b)) return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((v, i) => v === b[i]);
  return a === b;
}

/**
 * The storage under undici's cache interceptor, in the ledger's database: the interceptor decides
 * what is fresh, stale or storable (RFC 9111); this keeps entries by URL and method, matches their
 * Vary headers and drops expired ones.
 */
export class LedgerHttpCache implements HttpCache {
  constructor(private readonly rows: CacheRows) {}

  get(key: Key): ReturnType<CacheStore['get']> {
    const row = this.find(key, false);
    if (!row) return undefined;
    return {
      body: row.body ? gunzipSync(row.body) : undefined,
      statusCode: row.status_code,
      statusMessage: row.status_message,
      headers: row.headers ? JSON.parse(row.headers) : {},
      etag: row.etag ?? undefined,
      vary: row.vary ? JSON.parse(row.vary) : undefined,
      cacheControlDirectives: row.cache_control ? JSON.parse(row.cache_control) : undefined,
      cachedAt: row.cached_at,
      staleAt: row.stale_at,
      deleteAt: row.delete_at,
    };
  }

  createWriteStream(key: Key, value: Value): Writable {
    const chunks: Buffer[] = [];
    let size = 0;
    return new Writable({
      write: (chunk: Buffer, _enc, done) => {
        size += chunk.length;
        if (size > MAX_ENTRY_BYTES) return done(new Error('too large to cache'));
        chunks.push(chunk);
        done();
      },
      final: (done) => {
        this.save(key, value, Buffer.concat(chunks));
        done();
      },
    });
  }

  delete(key: Key): void {
    this.rows.deleteUrl(urlOf(key));
  }

  /** Drops entries past their deletion time (a run calls it once). */
  expire(now: number): void {
    this.rows.expire(now);
  }

  private save(key: Key, value: Value, body: Buffer): void {
    const row = {
      // JSON answers shrink several times: a million works' answers would otherwise weigh gigabytes.
      body: gzipSync(body),
      delete_at: value.deleteAt,
      status_code: value.statusCode,
      status_message: value.statusMessage,
      headers: JSON.stringify(value.headers ?? {}),
      etag: value.etag ?? null,
      cache_control: value.cacheControlDirectives ? JSON.stringify(value.cacheControlDirectives) : null,
      vary: value.vary ? JSON.stringify(value.vary) : null,
      cached_at: value.cachedAt,
      stale_at: value.staleAt,
    };
    this.rows.save(this.find(key, true)?.id ?? null, urlOf(key), key.method, row);
  }

  private find(key: Key, expiredToo: boolean): CacheRow | undefined {
    const now = Date.now();
    for (const row of this.rows.find(urlOf(key), key.method)) {
      if (!expiredToo && row.delete_at <= now) continue;
      const vary = row.vary ? (JSON.parse(row.vary) as Record<string, string | string[] | null>) : {};
      if (Object.entries(vary).every(([name, v]) => sameHeader(key.headers?.[name], v))) return row;
    }
    return undefined;
  }
}

function urlOf(key: Key): string {
  return `${key.origin}${key.path}`;
}

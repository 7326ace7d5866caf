import Database from 'better-sqlite3';
import { join } from 'node:path';
import type { Outcome } from '../../src/ledger/types.js';
import { parseLine, type Item } from '../../src/manifest/parse.js';

/** Reads the ledger a run left behind, as a user with sqlite3 would. */
export function queryLedger<T>(out: string, sql: string, ...params: unknown[]): T[] {
  const db = new Database(join(out, 'docstokg.sqlite'), { readonly: true });
  try {
    return db.prepare(sql).all(...params) as T[];
  } finally {
    db.close();
  }
}

export function writeLedger(out: string, sql: string, ...params: unknown[]): void {
  const db = new Database(join(out, 'docstokg.sqlite'));
  try {
    db.prepare(sql).run(...params);
  } finally {
    db.close();
  }
}

/** An item of one URL (and id), as the manifest parser makes it. */
export function itemOf(url: string, id?: string): Item {
  const p = parseLine({ file: 'm', line: 1, text: JSON.stringify({ url, id }) });
  if (p.kind !== 'item') throw new Error('not an item');
  return p.item;
}

/** A downloaded job's outcome, for tests that finish jobs. */
export const DONE: Outcome = {
  state: 'done', status: 'downloaded', reason: null, http_status: 200, url: 'u', final_url: 'u', sha256: 'ab'.repeat(32), bytes: 10,
  path: 'ab/x.pdf', content_type: 'application/pdf', etag: null, last_modified: null, resumed_from: 0, attempts: 1, elapsed_ms: 3,
};

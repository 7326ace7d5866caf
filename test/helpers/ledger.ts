import Database from 'better-sqlite3';
import { join } from 'node:path';

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

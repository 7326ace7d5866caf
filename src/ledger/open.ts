import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { FatalError } from '../errors.js';
import { MIGRATIONS } from './migrations.js';

export const SCHEMA_VERSION = MIGRATIONS.length;

/**
 * WAL with synchronous=NORMAL: commits do not fsync. Durability comes from ordering instead (the
 * object is fsync'd and moved before its row says done), and a lost tail of commits is repaired by
 * re-planning or reconcile.
 */
export function openDatabase(path: string, opts: { readonly?: boolean } = {}): Database.Database {
  let db: Database.Database;
  try {
    if (!opts.readonly) mkdirSync(dirname(path), { recursive: true });
    db = new Database(path, { readonly: opts.readonly ?? false, fileMustExist: opts.readonly ?? false });
    db.pragma('busy_timeout = 15000');
    if (!opts.readonly) {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
    }
    migrate(db, opts.readonly ?? false);
  } catch (err) {
    if (err instanceof FatalError) throw err;
    throw new FatalError(`ledger ${path} is unusable: ${(err as Error).message}`, { cause: err });
  }
  return db;
}

function migrate(db: Database.Database, readonly: boolean): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > SCHEMA_VERSION) {
    throw new FatalError(`ledger schema version ${version} is newer than this docstokg understands (${SCHEMA_VERSION})`);
  }
  if (version === SCHEMA_VERSION) return;
  if (readonly) throw new FatalError(`ledger schema version ${version} needs migrating; run a download or reconcile first`);
  for (let v = version; v < SCHEMA_VERSION; v += 1) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    }).immediate();
  }
}

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { LOCK_TIMEOUT_S } from '../config.js';
import { FatalError } from '../errors.js';
import { MIGRATIONS } from './migrations.js';
import { isBusy, WriteLock } from './sqlite/write-lock.js';

export const SCHEMA_VERSION = MIGRATIONS.length;

/**
 * WAL with synchronous=NORMAL: commits do not fsync. Durability comes from ordering instead (the
 * object is fsync'd and moved before its row says done), and a lost tail of commits is repaired by
 * re-planning or reconcile.
 */
export function openDatabase(path: string, opts: { readonly?: boolean; lockTimeoutMs?: number } = {}): Database.Database {
  let db: Database.Database;
  try {
    if (!opts.readonly) mkdirSync(dirname(path), { recursive: true });
    db = new Database(path, { readonly: opts.readonly ?? false, fileMustExist: opts.readonly ?? false });
    const timeoutMs = Math.round(opts.lockTimeoutMs ?? LOCK_TIMEOUT_S * 1000);
    db.pragma(`busy_timeout = ${timeoutMs}`);
    if (opts.readonly) migrate(db, true);
    else {
      const ready = db;
      // Opening may need the lock (recovering the WAL index after a writer was killed, a
      // migration): taken in turns, as a write is, while other processes write.
      new WriteLock(ready, timeoutMs).inTurns(() => {
        ready.pragma('journal_mode = WAL');
        ready.pragma('synchronous = NORMAL');
        // Checkpoints (which fsync) every ~40 MB of WAL rather than every 4 MB.
        ready.pragma('wal_autocheckpoint = 10000');
        migrate(ready, false);
      });
    }
  } catch (err) {
    if (err instanceof FatalError) throw err;
    const code = (err as { code?: string }).code;
    if (isBusy(err)) {
      throw new FatalError(`ledger ${path} is locked by another process for longer than --lock-timeout (${code})`, { cause: err });
    }
    throw new FatalError(`ledger ${path} is unusable: ${(err as Error).message}${code ? ` (${code})` : ''}`, { cause: err });
  }
  return db;
}

function migrate(db: Database.Database, readonly: boolean): void {
  const current = (): number => db.pragma('user_version', { simple: true }) as number;
  const check = (v: number): void => {
    if (v > SCHEMA_VERSION) throw new FatalError(`ledger schema version ${v} is newer than this docstokg understands (${SCHEMA_VERSION})`);
  };
  check(current());
  if (current() === SCHEMA_VERSION) return;
  if (readonly) throw new FatalError(`ledger schema version ${current()} needs migrating; run a download or reconcile first`);
  // Several processes may open a new ledger at once: the version is read again under the write
  // lock, so only the first one migrates.
  db.transaction(() => {
    const version = current();
    check(version);
    for (let v = version; v < SCHEMA_VERSION; v += 1) db.exec(MIGRATIONS[v]!);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  }).immediate();
}

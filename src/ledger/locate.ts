import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { SharedOptions } from '../config.js';
import { FatalError } from '../errors.js';
import { isS3 } from '../store/object-store.js';
import { DEFAULT_DB_NAME } from '../store/paths.js';
import { isPostgres, PgLedger } from './postgres.js';
import { SqliteLedger } from './sqlite.js';
import type { Ledger } from './types.js';

/** The ledger: --db (a file, or a postgres:// URL), else <out>/docstokg.sqlite (./docstokg.sqlite for an s3:// store). */
export function dbPath(opts: Pick<SharedOptions, 'out' | 'db'>): string {
  return opts.db ?? (isS3(opts.out) ? DEFAULT_DB_NAME : join(opts.out, DEFAULT_DB_NAME));
}

/** The local directory beside the ledger (the working directory for a PostgreSQL ledger). */
export function ledgerDir(opts: Pick<SharedOptions, 'out' | 'db'>): string {
  return isPostgres(opts.db) ? '.' : dirname(dbPath(opts));
}

/** The ledger a download writes to, created if needed. */
export function openLedger(opts: SharedOptions): Ledger {
  const path = dbPath(opts);
  return isPostgres(path) ? new PgLedger(path, { lockTimeoutMs: opts.lockTimeout }) : new SqliteLedger(path, { lockTimeoutMs: opts.lockTimeout });
}

/** The ledger of a store that has one (status, export, reconcile): a clear error otherwise. */
export function openExisting(opts: SharedOptions): Ledger {
  const path = dbPath(opts);
  if (!isPostgres(path) && !existsSync(path)) throw new FatalError(`no ledger at ${path} (run a download first, or pass --db)`);
  return openLedger(opts);
}

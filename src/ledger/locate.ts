import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { SharedOptions } from '../config.js';
import { FatalError } from '../errors.js';
import { isS3 } from '../store/object-store.js';
import { DEFAULT_DB_NAME } from '../store/paths.js';
import { SqliteLedger } from './sqlite.js';

/** The ledger's file: --db, else <out>/docstokg.sqlite (./docstokg.sqlite for an s3:// store). */
export function dbPath(opts: Pick<SharedOptions, 'out' | 'db'>): string {
  return opts.db ?? (isS3(opts.out) ? DEFAULT_DB_NAME : join(opts.out, DEFAULT_DB_NAME));
}

/** The ledger of a store that has one (status, export, reconcile): a clear error otherwise. */
export function openExisting(opts: SharedOptions): SqliteLedger {
  const path = dbPath(opts);
  if (!existsSync(path)) throw new FatalError(`no ledger at ${path} (run a download first, or pass --db)`);
  return new SqliteLedger(path, { lockTimeoutMs: opts.lockTimeout });
}

import { join } from 'node:path';

/**
 * Store layout under --out:
 *
 *   <out>/<aa>/<sha256>.pdf             complete, verified objects; `aa` = first two hex digits
 *   <out>/.staging/<k>/<job key>.part   bytes of a transfer in progress; `k` = the job key's first
 *                                       hex digit (same filesystem as the objects, so the final
 *                                       move is an atomic rename, never a copy)
 *   <out>/docstokg.sqlite               the ledger (default --db)
 */
export const STAGING_DIR = '.staging';
/**
 * The staging subdirectories. Creating a file holds its directory's lock, and on ext4 a create
 * can take a millisecond; in one directory every create of a run queues behind the last.
 */
export const STAGING_SHARDS: readonly string[] = [...'0123456789abcdef'];
export const DEFAULT_DB_NAME = 'docstokg.sqlite';

export function objectRelPath(sha256: string): string {
  return `${sha256.slice(0, 2)}/${sha256}.pdf`;
}

export function objectPath(out: string, sha256: string): string {
  return join(out, sha256.slice(0, 2), `${sha256}.pdf`);
}

export function partPath(out: string, jobKey: string): string {
  return join(out, STAGING_DIR, jobKey.slice(0, 1), `${jobKey}.part`);
}

import { join } from 'node:path';

/**
 * Store layout under --out:
 *
 *   <out>/<aa>/<sha256>.pdf        complete, verified objects; `aa` = first two hex digits
 *   <out>/.staging/<job key>.part  bytes of a transfer in progress (same filesystem as the objects,
 *                                  so the final move is an atomic link/rename, never a copy)
 *   <out>/docstokg.sqlite          the ledger (default --db)
 */
export const STAGING_DIR = '.staging';
export const DEFAULT_DB_NAME = 'docstokg.sqlite';

export function objectRelPath(sha256: string): string {
  return `${sha256.slice(0, 2)}/${sha256}.pdf`;
}

export function objectPath(out: string, sha256: string): string {
  return join(out, sha256.slice(0, 2), `${sha256}.pdf`);
}

export function partPath(out: string, jobKey: string): string {
  return join(out, STAGING_DIR, `${jobKey}.part`);
}

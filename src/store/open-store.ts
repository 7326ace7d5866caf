import { join } from 'node:path';
import type { SharedOptions } from '../config.js';
import { UsageError } from '../errors.js';
import { ledgerDir } from '../ledger/locate.js';
import { DirStore } from './dir-store.js';
import { isS3, type ObjectStore } from './object-store.js';

export interface StoreOptions extends SharedOptions {
  /** fsync objects and their directories (a directory store) */
  fsync?: boolean;
  retries?: number;
  retryDelay?: number;
}

/** The store --out names: a local directory, or an S3 bucket (its SDK is loaded only then). */
export async function openStore(opts: StoreOptions): Promise<ObjectStore> {
  if (!isS3(opts.out)) {
    if (opts.s3Endpoint) throw new UsageError('--s3-endpoint applies to an s3:// --out only');
    // A directory store stages its parts inside itself (the move into place must be a rename).
    if (opts.staging) throw new UsageError('--staging applies to an s3:// --out only (a directory store stages its parts in <out>/.staging)');
    return new DirStore(opts.out, opts.fsync ?? true);
  }
  const { parseS3Url, S3Store } = await import('./s3-store.js');
  const at = parseS3Url(opts.out);
  if (!at) throw new UsageError(`--out ${opts.out}: not an S3 location (s3://bucket or s3://bucket/prefix, a bucket name of 3-63 lowercase letters, digits, dots and hyphens)`);
  if (opts.s3Endpoint && !/^https?:\/\/[^/]+/.test(opts.s3Endpoint)) throw new UsageError(`--s3-endpoint ${opts.s3Endpoint}: not an http(s) URL`);
  return S3Store.open(at, {
    endpoint: opts.s3Endpoint ?? null,
    staging: opts.staging ?? join(ledgerDir(opts), 'docstokg-staging'),
    retries: opts.retries ?? 3,
    retryDelayMs: opts.retryDelay ?? 500,
  });
}

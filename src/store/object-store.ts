import { stat } from 'node:fs/promises';
import type { Finalized } from './finalize.js';

/**
 * Where verified objects live: a local directory (the default) or an S3 bucket. Parts are always
 * staged in a local directory first (`local`), verified there, then placed once.
 */
export interface ObjectStore {
  readonly kind: 'dir' | 's3';
  /** what --out said, for messages and events */
  readonly display: string;
  /** the local directory whose `.staging/` holds parts in progress (--out itself for a directory) */
  readonly local: string;
  /** Fails with a FatalError when the store cannot take objects (before any download starts). */
  preflight(): Promise<void>;
  /** The object for this digest is present. */
  exists(sha256: string): Promise<boolean>;
  /** Its size, or null when absent. */
  size(sha256: string): Promise<number | null>;
  /**
   * Places a complete part under its digest, once: an object already there is a dedup and the part
   * is dropped. `identity` is the part file this holder wrote; another file found at its path is
   * not moved ('not-ours').
   */
  place(part: string, sha256: string, identity: string | null): Promise<Finalized | 'not-ours'>;
  /** The digests of every object, for `reconcile --verify`. */
  objects(): AsyncIterable<string>;
  /**
   * A test of presence for many digests (`reconcile`): a directory answers each with a stat, a
   * bucket from one listing (a request per done job would take hours for millions).
   */
  presence(): Promise<(sha256: string) => Promise<boolean>>;
  /** SHA-256 of the object's bytes as stored. */
  hash(sha256: string): Promise<string>;
  /** Moves a corrupt object out of the way (kept for inspection). */
  quarantine(sha256: string, now: number): Promise<void>;
  /** A local file path of the object, for --link-dir; null when the store has none. */
  localPath(sha256: string): string | null;
  close(): void;
}

/**
 * The size of the object a finalize placed, or null when it did not: absent, or of another size
 * than the part still staged for it (a bucket that kept an interrupted upload; S3 itself never
 * does), in which case the part is to be placed again.
 */
export async function placedSize(store: ObjectStore, part: string, sha256: string): Promise<number | null> {
  const size = await store.size(sha256);
  if (size === null) return null;
  const staged = await stat(part).catch(() => null);
  return staged === null || staged.size === size ? size : null;
}

export const S3_PREFIX = 's3://';

export function isS3(out: string): boolean {
  return out.startsWith(S3_PREFIX);
}

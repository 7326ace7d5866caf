import { statSync } from 'node:fs';
import { mkdir, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { objectPath, objectRelPath } from './paths.js';
import { fsyncDir } from './fsync.js';

export interface Finalized {
  path: string;
  deduped: boolean;
}

const madeDirs = new Set<string>();

/**
 * Moves a complete, already fsync'd part to its content address with one atomic rename, so the
 * final name only ever appears complete. An object already there means the same bytes are stored:
 * the item is deduplicated and the part dropped. Two processes racing on the same digest may both
 * rename; the file replaced holds the very same bytes, which is what makes that harmless. A rename
 * (rather than link then unlink) also keeps the inode alive: creating and deleting thousands of
 * inodes in one directory made ext4's inode allocator the largest cost of a run of small files.
 */
export async function finalizePart(out: string, part: string, sha256: string, fsync: boolean): Promise<Finalized> {
  const target = objectPath(out, sha256);
  const dir = dirname(target);
  if (!madeDirs.has(dir)) {
    await mkdir(dir, { recursive: true });
    madeDirs.add(dir);
  }
  const deduped = objectExists(out, sha256);
  if (deduped) await unlink(part);
  else await rename(part, target);
  if (fsync && !deduped) await fsyncDir(dir);
  return { path: objectRelPath(sha256), deduped };
}

/**
 * True when the object for this digest is present (used to replay a finalize op). A stat of a
 * name that is usually missing is done in place: no trip to the thread pool, no error object.
 */
export function objectExists(out: string, sha256: string): boolean {
  try {
    return statSync(objectPath(out, sha256), { throwIfNoEntry: false })?.isFile() ?? false;
  } catch {
    return false;
  }
}

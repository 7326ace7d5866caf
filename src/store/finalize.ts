import { renameSync, statSync, unlinkSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { objectPath, objectRelPath } from './paths.js';
import { fsyncDir } from './fsync.js';

export interface Finalized {
  path: string;
  deduped: boolean;
}

const madeDirs = new Set<string>();

/**
 * Which file a part is: inode, size and modification time. The inode alone is not enough, since a
 * file system hands a freed inode number to the next file made.
 */
export function fileIdentity(st: { ino: bigint; size: bigint; mtimeNs: bigint }): string {
  return `${st.ino}:${st.size}:${st.mtimeNs}`;
}

/**
 * Moves a complete, already fsync'd part to its content address with one atomic rename, so the
 * final name only ever appears complete. An object already there means the same bytes are stored:
 * the item is deduplicated and the part dropped. Two processes racing on the same digest may both
 * rename; the file replaced holds the very same bytes, which is what makes that harmless. A rename
 * (rather than link then unlink) also keeps the inode alive: creating and deleting thousands of
 * inodes in one directory made ext4's inode allocator the largest cost of a run of small files.
 */
export async function finalizePart(out: string, part: string, sha256: string, fsync: boolean, identity: string | null): Promise<Finalized | 'not-ours'> {
  const target = objectPath(out, sha256);
  const dir = dirname(target);
  if (!madeDirs.has(dir)) {
    await mkdir(dir, { recursive: true });
    madeDirs.add(dir);
  }
  // From the check to the move without yielding: the file at the part's path must still be the
  // one this holder wrote (`identity`). A holder stopped past its lease finds its successor's part
  // there instead, and must not move it into the store under its own digest.
  if (identity !== null) {
    const st = statSync(part, { bigint: true, throwIfNoEntry: false });
    if (!st || fileIdentity(st) !== identity) return 'not-ours';
  }
  const deduped = objectExists(out, sha256);
  if (deduped) unlinkSync(part);
  else renameSync(part, target);
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

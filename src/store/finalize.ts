import { link, mkdir, stat, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { objectPath, objectRelPath } from './paths.js';
import { fsyncDir } from './fsync.js';

export interface Finalized {
  path: string;
  deduped: boolean;
}

const madeDirs = new Set<string>();

/**
 * Moves a complete, already fsync'd part to its content address. `link` (not `rename`) is used
 * because it refuses to replace: EEXIST means the same bytes are already stored, so the item is
 * deduplicated and the part is dropped. The final name therefore only ever appears complete.
 */
export async function finalizePart(out: string, part: string, sha256: string, fsync: boolean): Promise<Finalized> {
  const target = objectPath(out, sha256);
  const dir = dirname(target);
  if (!madeDirs.has(dir)) {
    await mkdir(dir, { recursive: true });
    madeDirs.add(dir);
  }
  let deduped = false;
  try {
    await link(part, target);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    deduped = true;
  }
  await unlink(part);
  if (fsync && !deduped) await fsyncDir(dir);
  return { path: objectRelPath(sha256), deduped };
}

/** True when the object for this digest is present (used to replay a finalize op). */
export async function objectExists(out: string, sha256: string): Promise<boolean> {
  try {
    return (await stat(objectPath(out, sha256))).isFile();
  } catch {
    return false;
  }
}

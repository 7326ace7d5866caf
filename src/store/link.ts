import { createHash } from 'node:crypto';
import { copyFile, link, mkdir, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';

const MAX_NAME = 120;
/** DOS device names are reserved with any extension too (`con.txt`). */
const RESERVED = /^(con|prn|aux|nul|com\d|lpt\d)(\..*)?$/i;
const DIGEST_HEX = 16;
const DIGESTED = new RegExp(`-[0-9a-f]{${DIGEST_HEX}}$`);

/**
 * A file name for an item id that can never escape the link directory and never collides: anything
 * outside [A-Za-z0-9._-] becomes `_`, and whenever that changed the id (or it was too long, or a
 * reserved name) a digest of the original id is appended, so two ids that sanitize alike still get
 * different names. An id that already ends like such a digest gets one too, so no id can be
 * written to take another id's name.
 */
export function safeName(id: string): string {
  // A leading dot would hide the file and a leading dash reads as a flag to shell tools.
  let name = id.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^[.-]/, '_');
  const changed = name !== id || name.length > MAX_NAME || RESERVED.test(name) || name === '' || DIGESTED.test(name);
  if (changed) {
    const digest = createHash('sha256').update(id).digest('hex').slice(0, DIGEST_HEX);
    const stem = RESERVED.test(name) ? `_${name}` : name;
    name = `${stem.slice(0, MAX_NAME) || 'item'}-${digest}`;
  }
  return `${name}.pdf`;
}

/**
 * Exposes an object as `<dir>/<safe id>.pdf`: a hard link where the filesystem allows, a copy
 * otherwise. The view is built under a temporary name and renamed over, so a reader never sees a
 * half-written copy and a changed object replaces the old view atomically.
 */
export async function linkItem(dir: string, id: string, object: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  const name = safeName(id);
  const target = join(dir, name);
  try {
    const [a, b] = await Promise.all([stat(target), stat(object)]);
    if (a.ino === b.ino && a.dev === b.dev) return name;
  } catch {
    // no view yet
  }
  // One temporary name per view: a crash's leftover is replaced by the next attempt at that item.
  const tmp = join(dir, `.${name}.tmp`);
  await unlink(tmp).catch(() => undefined);
  try {
    await link(object, tmp);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'EMLINK' && code !== 'ENOTSUP') throw err;
    await copyFile(object, tmp);
  }
  await rename(tmp, target);
  return name;
}

import { link, mkdir, readdir, rename, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { partPath, STAGING_DIR, STAGING_SHARDS } from './paths.js';

const PART = /^([0-9a-f]{64})\.part$/;

/** A file in staging: a part (with its job key) or anything else (key null). */
export interface StagedFile {
  key: string | null;
  path: string;
}

/** Makes the staging directories (see STAGING_SHARDS), then `moveLegacyParts`. */
export async function prepareStaging(out: string): Promise<void> {
  const dir = join(out, STAGING_DIR);
  await mkdir(dir, { recursive: true });
  await Promise.all(STAGING_SHARDS.map((d) => mkdir(join(dir, d), { recursive: true })));
  await moveLegacyParts(out);
}

/**
 * Moves the parts an earlier version kept directly in `.staging` to where a part of that job lives
 * now, so their transfers still resume. One that cannot be moved stays, for reconcile to sweep.
 */
export async function moveLegacyParts(out: string): Promise<void> {
  const dir = join(out, STAGING_DIR);
  for (const f of await readdir(dir).catch(() => [] as string[])) {
    const key = PART.exec(f)?.[1];
    if (key) await moveLegacyPart(join(dir, f), partPath(out, key)).catch(() => undefined);
  }
}

async function moveLegacyPart(from: string, to: string): Promise<void> {
  await mkdir(dirname(to), { recursive: true });
  try {
    // Not a rename: a part already at the new place was written after this one, and wins.
    await link(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') return rename(from, to);
  }
  await unlink(from);
}

/** Every file in staging: the parts in their subdirectories, then anything else found there. */
export async function stagedFiles(out: string): Promise<StagedFile[]> {
  const dir = join(out, STAGING_DIR);
  const files: StagedFile[] = [];
  const shards = new Set(STAGING_SHARDS);
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const path = join(dir, entry.name);
    if (entry.isDirectory() && shards.has(entry.name)) {
      for (const f of await readdir(path).catch(() => [] as string[])) {
        const key = PART.exec(f)?.[1] ?? null;
        files.push({ key: key?.startsWith(entry.name) ? key : null, path: join(path, f) });
      }
    } else {
      files.push({ key: entry.isFile() ? (PART.exec(entry.name)?.[1] ?? null) : null, path });
    }
  }
  return files;
}

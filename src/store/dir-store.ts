import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { finalizePart, objectExists } from './finalize.js';
import type { ObjectStore } from './object-store.js';
import { objectPath } from './paths.js';

export const QUARANTINE_DIR = '.quarantine';

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** The store in a local directory: `<out>/<aa>/<sha256>.pdf`, placed by an atomic rename. */
export class DirStore implements ObjectStore {
  readonly kind = 'dir';

  constructor(
    readonly local: string,
    private readonly fsync: boolean,
  ) {}

  get display(): string {
    return this.local;
  }

  async preflight(): Promise<void> {}

  exists(sha256: string): Promise<boolean> {
    return Promise.resolve(objectExists(this.local, sha256));
  }

  async size(sha256: string): Promise<number | null> {
    return (await stat(objectPath(this.local, sha256)).catch(() => null))?.size ?? null;
  }

  place(part: string, sha256: string, identity: string | null): ReturnType<ObjectStore['place']> {
    return finalizePart(this.local, part, sha256, this.fsync, identity);
  }

  async *objects(): AsyncIterable<string> {
    const shards = (await readdir(this.local).catch(() => [] as string[])).filter((d) => /^[0-9a-f]{2}$/.test(d));
    for (const shard of shards) {
      for (const f of await readdir(join(this.local, shard))) {
        const sha = /^([0-9a-f]{64})\.pdf$/.exec(f)?.[1];
        if (sha) yield sha;
      }
    }
  }

  presence(): Promise<(sha256: string) => Promise<boolean>> {
    return Promise.resolve((sha) => this.exists(sha));
  }

  hash(sha256: string): Promise<string> {
    return sha256File(objectPath(this.local, sha256));
  }

  async quarantine(sha256: string, now: number): Promise<void> {
    await mkdir(join(this.local, QUARANTINE_DIR), { recursive: true });
    await rename(objectPath(this.local, sha256), join(this.local, QUARANTINE_DIR, `${sha256}.pdf.${now}`));
  }

  localPath(sha256: string): string {
    return objectPath(this.local, sha256);
  }

  close(): void {}
}

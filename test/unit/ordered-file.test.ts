import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OrderedFile } from '../../src/download/ordered-file.js';

describe('OrderedFile', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'docstokg-ordered-'));
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  const idle = (f: OrderedFile) => new Promise<void>((resolve, reject) => f.finish(false, (err) => (err ? reject(err) : resolve())));

  it('a full queue says so; a writer that asks for room after the queue drained is still called', async () => {
    const f = new OrderedFile(join(dir, 'a.part'), 'w', false);
    const big = Buffer.alloc(300 * 1024, 1);
    expect(f.append(big)).toBe(false);
    // The writer waited on something else (a free-space check) while the queue drained.
    await idle(f);
    let called = false;
    f.whenRoom(() => (called = true));
    expect(called).toBe(false);
    await new Promise((r) => setTimeout(r, 20));
    expect(called).toBe(true);
    await new Promise<void>((resolve) => f.close(resolve));
    expect((await readFile(join(dir, 'a.part'))).equals(big)).toBe(true);
  });

  it('keeps the order of appended chunks and calls a waiting writer once the queue has room', async () => {
    const f = new OrderedFile(join(dir, 'b.part'), 'w', false);
    const chunks = Array.from({ length: 40 }, (_, i) => Buffer.alloc(64 * 1024, i));
    let waits = 0;
    for (const c of chunks) {
      if (!f.append(c)) {
        waits += 1;
        await new Promise<void>((resolve) => f.whenRoom(resolve));
      }
    }
    await new Promise<void>((resolve) => f.close(resolve));
    expect(waits).toBeGreaterThan(0);
    expect((await readFile(join(dir, 'b.part'))).equals(Buffer.concat(chunks))).toBe(true);
  });
});

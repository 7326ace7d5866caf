import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
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

  it('writes nothing before its gate opens, then every chunk in order', async () => {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const path = join(dir, 'c.part');
    const f = new OrderedFile(path, 'w', false, gate);
    const chunks = Array.from({ length: 3 }, (_, i) => Buffer.alloc(64 * 1024, i + 1));
    for (const c of chunks) expect(f.append(c)).toBe(true);
    // While the gate is shut more may wait than the usual 256 KiB, so a fast body is not paused.
    chunks.push(Buffer.alloc(1024 * 1024, 9));
    expect(f.append(chunks[3]!)).toBe(true);
    // Long enough for the open and several writes on the thread pool.
    await new Promise((r) => setTimeout(r, 50));
    expect((await stat(path)).size).toBe(0);
    open();
    await new Promise<void>((resolve) => f.close(resolve));
    expect((await readFile(path)).equals(Buffer.concat(chunks))).toBe(true);
  });

  it('a gate that rejects is the file\'s error, and nothing is written', async () => {
    const path = join(dir, 'd.part');
    const f = new OrderedFile(path, 'w', false, Promise.reject(new Error('commit failed')));
    f.append(Buffer.alloc(1024, 7));
    await expect(idle(f)).rejects.toThrow('commit failed');
    await new Promise<void>((resolve) => f.close(resolve));
    expect((await stat(path)).size).toBe(0);
  });
});

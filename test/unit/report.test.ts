import { setImmediate as nextTurn } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { formatEta } from '../../src/progress.js';
import { Reporter } from '../../src/report.js';

const realWrite = process.stdout.write;
let writes: string[] = [];

function captureStdout(): void {
  writes = [];
  process.stdout.write = ((chunk: string | Uint8Array) => {
    writes.push(String(chunk));
    return true;
  }) as typeof process.stdout.write;
}

afterEach(() => {
  process.stdout.write = realWrite;
});

describe('Reporter', () => {
  it('writes a burst of records in 64 KiB batches, every line once and in order', async () => {
    const r = new Reporter({ json: true, quiet: true, verbose: false, progress: false }, Date.now);
    captureStdout();
    const n = 20_000;
    // as the planning loop does: each record, then a wait for stdout to take more
    for (let i = 0; i < n; i += 1) {
      r.skipped(JSON.stringify({ id: `i${i}`, status: 'skipped' }));
      await r.writable();
    }
    await nextTurn();
    process.stdout.write = realWrite;
    const lines = writes.join('').split('\n').filter(Boolean);
    expect(lines).toHaveLength(n);
    expect(lines.map((l) => JSON.parse(l).id)).toEqual(Array.from({ length: n }, (_, i) => `i${i}`));
    // ~700 KB of records: a write per 64 KiB, not one per record
    expect(writes.length).toBeLessThan(20);
    await r.finish();
  });

  it('a lone record is written in the same turn of the event loop, without waiting for more', async () => {
    const r = new Reporter({ json: true, quiet: true, verbose: false, progress: false }, Date.now);
    captureStdout();
    r.skipped('{"id":"only"}');
    expect(writes).toEqual([]);
    await nextTurn();
    process.stdout.write = realWrite;
    expect(writes).toEqual(['{"id":"only"}\n']);
    await r.finish();
  });
});

describe('formatEta', () => {
  const at = (planned: number, finished: number, elapsedMs: number) => formatEta({ planned, finished, failed: 0, bytes: 0, startedAt: 0 }, elapsedMs);

  it('is unknown until an item finished, then the average pace so far', () => {
    expect(at(300, 0, 5000)).toBe('--');
    expect(at(300, 100, 10_000)).toBe('20s');
    expect(at(300, 10, 10_000)).toBe('4m50s');
    expect(at(100_000, 10, 10_000)).toBe('27h46m');
  });

  it('is 0s once every planned item finished, never Infinity or NaN', () => {
    expect(at(300, 300, 1000)).toBe('0s');
    expect(at(0, 0, 0)).toBe('0s');
    expect(at(5, 1, 0)).toBe('--');
  });
});

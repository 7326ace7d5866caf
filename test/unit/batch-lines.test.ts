import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { BatchLines, type KeyedBatch } from '../../src/manifest/keyed-lines.js';
import { parseLine, type Item } from '../../src/manifest/parse.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

describe('BatchLines', () => {
  it('an item planned from one line of a batch does not keep the whole batch alive', () => {
    // One new line in each of 2,000 batches of 1,500 bare URL lines (~55 KB each): the items wait in
    // the pool; the batches must not wait with them.
    gc();
    const before = process.memoryUsage().heapUsed;
    const kept: Item[] = [];
    for (let b = 0; b < 2000; b++) {
      const texts = Array.from({ length: 1500 }, (_, i) => `http://h${b}.example/some/path/${i}.pdf`).join('\n');
      const batch: KeyedBatch = { file: 'm.txt', first: 1, texts, kinds: '', keys: '', problems: {} };
      const parsed = parseLine(new BatchLines(batch).line(700));
      if (parsed.kind !== 'item') throw new Error(`line 700 of batch ${b} did not parse`);
      kept.push(parsed.item);
    }
    gc();
    const retained = process.memoryUsage().heapUsed - before;
    expect(kept[1999]!.candidates[0]!.canonical).toBe('http://h1999.example/some/path/700.pdf');
    // Slices of the batches would hold ~110 MB here; copies hold a few.
    expect(retained).toBeLessThan(20 * 1024 * 1024);
  });
});

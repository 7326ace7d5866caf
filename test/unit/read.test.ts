import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readManifests, type ManifestLine } from '../../src/manifest/read.js';

async function lines(file: string, sliced: boolean): Promise<ManifestLine[]> {
  const out: ManifestLine[] = [];
  for await (const chunk of readManifests([file], sliced)) for (const l of chunk) out.push(l);
  return out;
}

/** `count` valid lines of assorted shapes, CRLF or LF, a few of them long enough to cross chunks. */
function valid(from: number, count: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = from; i < from + count; i++) {
    if (i % 97 === 0) out.push(Buffer.from('y'.repeat(70_000)));
    else if (i % 3 === 0) out.push(Buffer.from(`{"id":"W${i}","url":"https://b.example/ü✓\u{1F600}/${i}.pdf"}`));
    else if (i % 13 === 0) out.push(Buffer.from(''));
    else out.push(Buffer.from(`http://c.example/${i}.pdf`));
    out.push(Buffer.from(i % 5 === 0 ? '\r\n' : '\n'));
  }
  return out;
}

/**
 * Stretches of valid lines, whole chunks of them, each stretch then broken by one kind of bad line
 * only (so every check of a chunk is the one that has to catch it), a BOM and CRLF on the first
 * line, a line over the length limit, and a last line without a newline.
 */
function tricky(): Buffer {
  const bad = [Buffer.from([0x41, 0xff, 0x42]), Buffer.from([0x41, 0x00, 0x42]), Buffer.from('é').subarray(0, 1), Buffer.from('\r')];
  const parts: Buffer[] = [Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('http://a.example/first.pdf\r\n'), ...valid(1, 3000)];
  bad.forEach((b, k) => parts.push(...valid(10_000 * (k + 1), 2000), b, Buffer.from('\n'), ...valid(10_000 * (k + 1) + 2000, 2000)));
  parts.push(Buffer.alloc(9 * 1024 * 1024, 0x61), Buffer.from('\nlast line without a newline'));
  return Buffer.concat(parts);
}

describe('readManifests', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'docstokg-read-'));
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  it.each([
    ['plain', false],
    ['gzip', true],
  ])('gives the same lines whether a chunk is decoded whole or line by line (%s)', async (name, gz) => {
    const file = join(dir, name);
    const data = tricky();
    await writeFile(file, gz ? gzipSync(data) : data);
    const one = await lines(file, false);
    const sliced = await lines(file, true);
    expect(sliced).toEqual(one);
    expect(one[0]).toEqual({ file, line: 1, text: 'http://a.example/first.pdf' });
    expect(one.filter((l) => l.problem === 'line is not valid UTF-8').length).toBe(2);
    expect(one.filter((l) => l.problem?.startsWith('line contains a NUL')).length).toBe(1);
    expect(one.filter((l) => l.text === '' && !l.problem).length).toBeGreaterThan(500);
    expect(one.filter((l) => l.problem?.startsWith('line is longer than')).length).toBe(1);
    expect(one.some((l) => l.text.endsWith('\r'))).toBe(false);
    expect(one.at(-1)).toEqual({ file, line: one.length, text: 'last line without a newline' });
  });
});

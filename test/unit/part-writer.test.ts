import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DecodingSink, decoderFor } from '../../src/download/decode.js';
import { OverlapMismatch, PartWriter, readHeld, type PartWriterOptions } from '../../src/download/part-writer.js';
import { ItemError } from '../../src/errors.js';
import { samplePdf } from '../helpers/origin.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Feeds a body in chunks, honouring the writer's "wait" answers as undici's handler does. */
async function feed(writer: { accept: PartWriter['accept']; end: () => Promise<void> }, body: Buffer, chunk = 16 * 1024): Promise<void> {
  for (let i = 0; i < body.length; i += chunk) {
    const more = await new Promise<boolean>((resolve) => {
      if (writer.accept(body.subarray(i, i + chunk), () => resolve(true))) resolve(true);
    });
    expect(more).toBe(true);
  }
  await writer.end();
}

describe('PartWriter', () => {
  let dir: string;
  let opts: PartWriterOptions;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'docstokg-part-'));
    opts = { path: join(dir, 'x.part'), mode: 'fresh', held: 0, overlap: 0, declared: null, httpStatus: 200, maxBytes: 1 << 30, minFree: 0, out: dir, fsync: true, minSpeed: { bytesPerSecond: 0, windowMs: 1000 } };
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('writes a fresh body with its rolling SHA-256, fsync timed', async () => {
    const body = samplePdf('fresh', 300_000);
    const w = new PartWriter({ ...opts, declared: body.length }, null);
    await feed(w, body);
    expect(w.complete).toBe(true);
    expect(w.sha256).toBe(sha(body));
    expect(w.fsyncMs).toEqual(expect.any(Number));
    expect((await readFile(opts.path)).equals(body)).toBe(true);
  });

  it('reports the body complete once every byte is written, before the fsync', async () => {
    const body = samplePdf('complete', 700_000);
    let seen: { sha256: string; size: number; onDisk: Buffer; fsyncMs: number | null } | null = null;
    const w: PartWriter = new PartWriter({ ...opts, declared: body.length, onComplete: (b) => (seen = { ...b, onDisk: readFileSync(opts.path), fsyncMs: w.fsyncMs }) }, null);
    await feed(w, body);
    expect(seen).toMatchObject({ sha256: sha(body), size: body.length, fsyncMs: null });
    expect(seen!.onDisk.equals(body)).toBe(true);
    expect(w.fsyncMs).toEqual(expect.any(Number));
  });

  it('appends after held bytes, checking the overlap first; a mismatch is refused', async () => {
    const body = samplePdf('append', 200_000);
    await writeFile(opts.path, body.subarray(0, 120_000));
    const seed = await readHeld(opts.path, 120_000, 1000);
    const w = new PartWriter({ ...opts, mode: 'append', held: 120_000, overlap: 1000 }, seed);
    await feed(w, body.subarray(119_000));
    expect(w.sha256).toBe(sha(body));
    expect((await readFile(opts.path)).equals(body)).toBe(true);

    const other = Buffer.from(body);
    other[119_500] = other[119_500]! ^ 0xff;
    await writeFile(opts.path, body.subarray(0, 120_000));
    const bad = new PartWriter({ ...opts, mode: 'append', held: 120_000, overlap: 1000 }, await readHeld(opts.path, 120_000, 1000));
    expect(() => bad.accept(other.subarray(119_000, 121_000), () => undefined)).toThrow(OverlapMismatch);
    await bad.close();
  });

  it('refuses what is not a PDF, too large, or shorter than declared, with stable codes', async () => {
    const html = Buffer.from('<html>'.padEnd(2000, ' '));
    const w = new PartWriter(opts, null);
    expect(() => w.accept(html, () => undefined)).toThrow(expect.objectContaining({ code: 'not_pdf' }));
    await w.close();
    expect(() => new PartWriter({ ...opts, declared: 2000, maxBytes: 1000 }, null)).toThrow(expect.objectContaining({ code: 'too_large' }));
    const body = samplePdf('short', 10_000);
    const short = new PartWriter({ ...opts, declared: body.length + 10 }, null);
    await expect(feed(short, body)).rejects.toMatchObject({ code: 'size_mismatch' });
    const streamed = new PartWriter({ ...opts, maxBytes: 5000 }, null);
    expect(() => { for (let i = 0; i < body.length; i += 1000) streamed.accept(body.subarray(i, i + 1000), () => undefined); }).toThrow(ItemError);
    await streamed.close();
  });

  it('decodes a gzip body on its way into the part, hashing the decoded bytes', async () => {
    const body = samplePdf('gzip', 100_000);
    const decoder = decoderFor('gzip');
    expect(decoder).not.toBeNull();
    expect(decoderFor('zstd')).toBe('unsupported');
    expect(decoderFor('gzip, br')).toBe('unsupported');
    expect(decoderFor('identity')).toBeNull();
    const w = new PartWriter(opts, null);
    const sink = new DecodingSink(decoder as Exclude<typeof decoder, null | 'unsupported'>, w, (err) => { throw err; });
    await feed(sink, gzipSync(body), 4096);
    expect(w.sha256).toBe(sha(body));
    expect((await readFile(opts.path)).equals(body)).toBe(true);
  });
});

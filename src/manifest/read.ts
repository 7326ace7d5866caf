import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { UsageError } from '../errors.js';

export interface ManifestLine {
  file: string;
  line: number;
  text: string;
}

/** Peeks at the first chunk so gzip is recognised by its magic bytes, whatever the file is called. */
async function decoded(input: Readable): Promise<Readable> {
  const it = input[Symbol.asyncIterator]();
  const first = await it.next();
  if (first.done) return Readable.from([]);
  const head = first.value as Buffer;
  async function* rest(): AsyncGenerator<Buffer> {
    yield head;
    for (let r = await it.next(); !r.done; r = await it.next()) yield r.value as Buffer;
  }
  const raw = Readable.from(rest(), { objectMode: false });
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return raw.pipe(createGunzip());
  return raw;
}

function open(file: string): Readable {
  if (file === '-') return process.stdin;
  return createReadStream(file, { highWaterMark: 256 * 1024 });
}

/** Streams every line of every manifest in order; memory stays flat whatever their length. */
export async function* readManifests(files: readonly string[]): AsyncGenerator<ManifestLine> {
  for (const file of files) {
    let input: Readable;
    try {
      input = await decoded(open(file));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new UsageError(`cannot read manifest ${file}: ${code ?? (err as Error).message}`);
    }
    const lines = createInterface({ input, crlfDelay: Infinity });
    let n = 0;
    try {
      for await (const text of lines) {
        n += 1;
        yield { file, line: n, text: n === 1 && text.charCodeAt(0) === 0xfeff ? text.slice(1) : text };
      }
    } catch (err) {
      throw new UsageError(`cannot read manifest ${file} after line ${n}: ${(err as Error).message}`);
    }
  }
}

import { isUtf8 } from 'node:buffer';
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { MAX_LINE_BYTES } from '../config.js';
import { UsageError } from '../errors.js';

/** One line of a manifest; `problem` is set when the line cannot be judged at all. */
export interface ManifestLine {
  file: string;
  line: number;
  text: string;
  problem?: string;
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
  return createReadStream(file, { highWaterMark: 64 * 1024 });
}

const NEWLINE = 0x0a;
const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

/**
 * Splits bytes into lines without ever holding more than MAX_LINE_BYTES of one line: a longer line
 * is counted, reported and skipped, so a manifest with a gigabyte of garbage and no newline still
 * streams. Each line is checked to be UTF-8 (replacement characters would silently change URLs).
 */
async function* splitLines(input: Readable, file: string, count: { lines: number }, sliced: boolean): AsyncGenerator<Iterable<ManifestLine>> {
  const splitter = new LineSplitter(file, count, sliced);
  for await (const chunk of input) yield splitter.linesOf(chunk as Buffer);
  const last = splitter.end();
  if (last) yield [last];
}

class LineSplitter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** bytes of the current line dropped because it is over the limit */
  private dropped = 0;
  private n = 0;

  constructor(private readonly file: string, private readonly count: { lines: number }, private readonly sliced: boolean) {}

  /** The lines of a chunk, made one at a time as they are used, never all at once. */
  *linesOf(buf: Buffer): Generator<ManifestLine> {
    let start = 0;
    if (this.sliced) {
      const first = buf.indexOf(NEWLINE);
      // The end of a line begun in an earlier chunk.
      if (first !== -1 && (this.pendingBytes > 0 || this.dropped > 0)) {
        yield this.finish(buf.subarray(0, first));
        start = first + 1;
      }
      const last = buf.lastIndexOf(NEWLINE);
      // The chunk's other whole lines, checked and decoded in one go when they are all fine (UTF-8
      // holds for the lines exactly when it holds for them together, newlines being ASCII); when
      // one is not, each line is judged alone below.
      const whole = last > start && last - start <= MAX_LINE_BYTES ? buf.subarray(start, last) : null;
      if (whole && isUtf8(whole) && !whole.includes(0)) {
        yield* this.decodedLines(whole.toString('utf8'));
        start = last + 1;
      }
    }
    for (let nl = buf.indexOf(NEWLINE, start); nl !== -1; nl = buf.indexOf(NEWLINE, start)) {
      yield this.finish(buf.subarray(start, nl));
      start = nl + 1;
    }
    if (start < buf.length) this.hold(buf.subarray(start));
  }

  /** The last line, when the input did not end with a newline. */
  end(): ManifestLine | null {
    return this.pendingBytes > 0 || this.dropped > 0 ? this.finish(Buffer.alloc(0)) : null;
  }

  /** Lines of a text already known to be valid: the lines `judge` would make, as slices of it. */
  private *decodedLines(text: string): Generator<ManifestLine> {
    for (let from = 0; ; ) {
      const end = text.indexOf('\n', from);
      let line = end === -1 ? text.slice(from) : text.slice(from, end);
      this.n += 1;
      this.count.lines = this.n;
      if (this.n === 1 && line.charCodeAt(0) === 0xfeff) line = line.slice(1);
      if (line.charCodeAt(line.length - 1) === 0x0d) line = line.slice(0, -1);
      yield { file: this.file, line: this.n, text: line };
      if (end === -1) return;
      from = end + 1;
    }
  }

  /** The line that ends with `piece`. */
  private finish(piece: Buffer): ManifestLine {
    this.n += 1;
    this.count.lines = this.n;
    const total = this.dropped + this.pendingBytes + piece.length;
    const line = this.dropped > 0 || total > MAX_LINE_BYTES ? this.tooLong(total) : this.judge(this.pendingBytes === 0 ? piece : Buffer.concat([...this.pending, piece]));
    this.pending = [];
    this.pendingBytes = 0;
    this.dropped = 0;
    return line;
  }

  private hold(piece: Buffer): void {
    if (this.dropped > 0 || this.pendingBytes + piece.length > MAX_LINE_BYTES) {
      this.dropped += this.pendingBytes + piece.length;
      this.pending = [];
      this.pendingBytes = 0;
    } else {
      // A copy: the stream may reuse its chunk's memory.
      this.pending.push(Buffer.from(piece));
      this.pendingBytes += piece.length;
    }
  }

  private tooLong(bytes: number): ManifestLine {
    return { file: this.file, line: this.n, text: '', problem: `line is longer than the ${MAX_LINE_BYTES}-byte limit (${bytes} bytes); skipped` };
  }

  private judge(bytes: Buffer): ManifestLine {
    let b = bytes;
    if (this.n === 1 && b.subarray(0, 3).equals(BOM)) b = b.subarray(3);
    if (b.length > 0 && b[b.length - 1] === 0x0d) b = b.subarray(0, b.length - 1);
    if (!isUtf8(b)) return { file: this.file, line: this.n, text: '', problem: 'line is not valid UTF-8' };
    if (b.includes(0)) return { file: this.file, line: this.n, text: '', problem: 'line contains a NUL byte (binary data?)' };
    return { file: this.file, line: this.n, text: b.toString('utf8') };
  }
}

/**
 * Streams every line of every manifest in order: the lines of each chunk read, to be used before
 * the next chunk is asked for (one trip through the async generators per chunk, not per line).
 * Memory stays flat whatever the manifests' length.
 *
 * `sliced`: a chunk's valid lines are decoded as one string and handed out as slices of it, about
 * a quarter of the cost (1,000,000 short lines: 0.2-0.3 s against 0.7-1.2 s), but the chunk's
 * whole text then stays alive as long as any string taken from one of its lines. Only for a
 * reader that keeps nothing of a line past its chunk (the key thread); items planned from lines
 * hold their URLs for as long as the run needs them.
 */
export async function* readManifests(files: readonly string[], sliced = false): AsyncGenerator<Iterable<ManifestLine>> {
  for (const file of files) {
    let input: Readable;
    try {
      input = await decoded(open(file));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new UsageError(`cannot read manifest ${file}: ${code ?? (err as Error).message}`);
    }
    const count = { lines: 0 };
    try {
      yield* splitLines(input, file, count, sliced);
    } catch (err) {
      // A truncated gzip stream or a read error: what was read stands, the rest is one invalid line.
      const n = count.lines;
      yield [{ file, line: n + 1, text: '', problem: `manifest cannot be read past line ${n}: ${(err as Error).message}` }];
    }
  }
}

import { createHash, type Hash } from 'node:crypto';
import { open as openFile } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { QUOTA_RECHECK_BYTES } from '../config.js';
import { ItemError } from '../errors.js';
import { checkQuota, checkQuotaSync } from '../store/quota.js';
import { OrderedFile } from './ordered-file.js';
import { PdfSniffer } from './validate.js';

const READ_CHUNK = 1024 * 1024;

/** The server's bytes at the overlap differ from the held ones: the part must not be continued. */
export class OverlapMismatch extends Error {}

/** Hash and sniffer seeded with the bytes of a part, and its last `overlap` bytes. */
export interface HeldState {
  hash: Hash;
  sniffer: PdfSniffer;
  tail: Buffer;
}

/** Reads the held bytes of a part: the one and only time they are read. */
export async function readHeld(path: string, held: number, overlap: number): Promise<HeldState> {
  const hash = createHash('sha256');
  const sniffer = new PdfSniffer();
  const fh = await openFile(path, 'r');
  const buf = Buffer.allocUnsafe(READ_CHUNK);
  const tail = Buffer.alloc(overlap);
  try {
    for (let pos = 0; pos < held; ) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(READ_CHUNK, held - pos), pos);
      if (bytesRead === 0) throw new ItemError('size_mismatch', `part shrank to ${pos} bytes while resuming`);
      const chunk = buf.subarray(0, bytesRead);
      hash.update(chunk);
      sniffer.push(chunk);
      const end = pos + bytesRead;
      if (end > held - overlap) {
        const from = Math.max(pos, held - overlap);
        chunk.copy(tail, from - (held - overlap), from - pos, bytesRead);
      }
      pos = end;
    }
  } finally {
    await fh.close();
  }
  return { hash, sniffer, tail };
}

export interface PartWriterOptions {
  path: string;
  /** write from zero, append after `held` bytes, or only verify a part the server says is complete */
  mode: 'fresh' | 'append' | 'complete';
  held: number;
  /** bytes at the start of the body that repeat the end of the part and must match it */
  overlap: number;
  /** Content-Length of this response */
  declared: number | null;
  httpStatus: number;
  maxBytes: number;
  minFree: number;
  out: string;
  fsync: boolean;
  /** a body slower than `bytesPerSecond` over any `windowMs` is stalled (a trickle that defeats the stall timeout) */
  minSpeed: { bytesPerSecond: number; windowMs: number };
}

/**
 * Receives a response body straight from undici (no intermediate readable) with a rolling SHA-256.
 * Every chunk is checked, counted and hashed the moment it arrives, then handed to an OrderedFile
 * that writes it on the thread pool: opening, writing and closing the part never block the event
 * loop that parses the other transfers. A chunk once accepted is always written, even when the
 * connection fails right after (the part then holds every byte received, for a resume), and
 * `settled` resolves only when the part is closed: nothing can write to it after the attempt that
 * owned it has ended. Held bytes are read exactly once, to seed the hash.
 */
export class PartWriter extends Writable {
  readonly hash: Hash;
  /** body bytes received by this response */
  received = 0;
  size: number;
  fsyncMs: number | null = null;
  /** resolves once every accepted byte is written and the part is closed */
  readonly settled: Promise<void>;
  private readonly sniffer: PdfSniffer;
  private readonly tail: Buffer;
  private overlapLeft: number;
  private readonly file: OrderedFile | null = null;
  private nextQuotaCheck: number;
  private setupError: Error | null = null;
  private windowStart = performance.now();
  private windowBytes = 0;

  constructor(private readonly o: PartWriterOptions, seed: HeldState | null) {
    super({ highWaterMark: 1024 * 1024 });
    const appending = o.mode !== 'fresh' && seed !== null;
    this.hash = appending ? seed.hash : createHash('sha256');
    this.sniffer = appending ? seed.sniffer : new PdfSniffer();
    this.tail = appending ? seed.tail : Buffer.alloc(0);
    this.size = appending ? o.held : 0;
    this.overlapLeft = o.overlap;
    this.nextQuotaCheck = this.size + QUOTA_RECHECK_BYTES;
    try {
      if (o.declared !== null && this.size - o.overlap + o.declared > o.maxBytes && o.mode !== 'complete') {
        throw new ItemError('too_large', `size ${this.size - o.overlap + o.declared} exceeds --max-bytes ${o.maxBytes}`, { httpStatus: o.httpStatus });
      }
      checkQuotaSync(o.out, o.declared === null || o.mode === 'complete' ? 0 : o.declared - o.overlap, o.minFree);
    } catch (err) {
      this.setupError = err as Error;
    }
    // Opened on the thread pool while the first chunks are already being accepted.
    if (o.mode !== 'complete' && !this.setupError) this.file = new OrderedFile(o.path, o.mode === 'append' ? 'a' : 'w', o.fsync);
    this.settled = this.file ? this.file.closed : Promise.resolve();
  }

  override _construct(callback: (error?: Error | null) => void): void {
    callback(this.setupError);
  }

  override _write(raw: Buffer, _enc: BufferEncoding, callback: (error?: Error | null) => void): void {
    try {
      if (this.file?.error) throw this.file.error;
      this.received += raw.length;
      this.checkSpeed(raw.length);
      if (!this.file) return callback();
      let chunk = raw;
      if (this.overlapLeft > 0) {
        const n = Math.min(this.overlapLeft, chunk.length);
        const at = this.tail.length - this.overlapLeft;
        if (!chunk.subarray(0, n).equals(this.tail.subarray(at, at + n))) throw new OverlapMismatch();
        this.overlapLeft -= n;
        chunk = chunk.subarray(n);
        if (chunk.length === 0) return callback();
      }
      this.size += chunk.length;
      if (this.size > this.o.maxBytes) throw new ItemError('too_large', `body exceeds --max-bytes ${this.o.maxBytes}`, { httpStatus: this.o.httpStatus });
      if (!this.sniffer.push(chunk)) throw new ItemError('not_pdf', 'no %PDF- header in the first 1024 bytes', { httpStatus: this.o.httpStatus });
      this.hash.update(chunk);
      const file = this.file;
      file.append(chunk, () => {
        if (this.o.declared === null && this.size >= this.nextQuotaCheck) {
          // Unknown length: keep checking free space as the body grows.
          this.nextQuotaCheck = this.size + QUOTA_RECHECK_BYTES;
          checkQuota(this.o.out, 0, this.o.minFree).then(() => callback(), callback);
          return;
        }
        callback(file.error);
      });
    } catch (err) {
      callback(err as Error);
    }
  }

  private checkSpeed(bytes: number): void {
    const { bytesPerSecond, windowMs } = this.o.minSpeed;
    if (bytesPerSecond === 0) return;
    this.windowBytes += bytes;
    const now = performance.now();
    if (now - this.windowStart < windowMs) return;
    const rate = (this.windowBytes * 1000) / (now - this.windowStart);
    if (rate < bytesPerSecond) {
      throw new ItemError('stalled', `body arrived at ${Math.round(rate)} bytes/s, under --min-speed ${bytesPerSecond}`, { httpStatus: this.o.httpStatus });
    }
    this.windowStart = now;
    this.windowBytes = 0;
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.overlapLeft > 0) return callback(new OverlapMismatch());
    if (this.o.declared !== null && this.received !== this.o.declared) {
      return callback(new ItemError('size_mismatch', `received ${this.received} bytes, Content-Length says ${this.o.declared}`, { httpStatus: this.o.httpStatus }));
    }
    if (!this.sniffer.finish()) return callback(new ItemError('not_pdf', 'no %PDF- header in the body', { httpStatus: this.o.httpStatus }));
    if (!this.file) return callback();
    this.file.finish(this.o.fsync, (err, fsyncMs) => {
      this.fsyncMs = fsyncMs;
      callback(err);
    });
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.file) return callback(err);
    this.file.close(() => callback(err));
  }
}

/** Swallows a body we do not keep (redirects, errors), up to a bound. */
export class Discard extends Writable {
  private seen = 0;
  constructor(private readonly limit = 1024 * 1024) {
    super();
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.seen += chunk.length;
    callback(this.seen > this.limit ? new DiscardOverflow() : null);
  }
}

export class DiscardOverflow extends Error {}

import { createHash, type Hash } from 'node:crypto';
import { close, fdatasync, fsync, open, write } from 'node:fs';
import { open as openFile } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { QUOTA_RECHECK_BYTES } from '../config.js';
import { ItemError } from '../errors.js';
import { checkQuota, checkQuotaSync } from '../store/quota.js';
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
 * Accepted bytes waiting for the thread pool before the writer asks undici to wait. Small: they
 * are what a kill -9 loses on top of the kernel's socket buffers.
 */
const QUEUE_BYTES = 256 * 1024;
/**
 * With fsync on, a large part asks for its data to be flushed every this many bytes while it is
 * still downloading, so the disk works alongside the network instead of all at the end.
 */
const FLUSH_EVERY = 16 * 1024 * 1024;

/**
 * Receives a response body straight from undici (no intermediate readable) with a rolling SHA-256.
 * Every chunk is checked, counted and hashed the moment it arrives, then queued for writing on the
 * thread pool, in order, one write at a time: opening, writing and closing the part never block
 * the event loop that parses the other transfers. A chunk once accepted is always written, even
 * when the connection fails right after (the part then holds every byte received, for a resume),
 * and `settled` resolves only when the file is closed: nothing can write to a part after the
 * attempt that owned it has ended. Held bytes are read exactly once, to seed the hash.
 */
export class PartWriter extends Writable {
  readonly hash: Hash;
  /** body bytes received by this response */
  received = 0;
  size: number;
  fsyncMs: number | null = null;
  /** resolves once every accepted byte is written and the file is closed */
  readonly settled: Promise<void>;
  private readonly sniffer: PdfSniffer;
  private readonly tail: Buffer;
  private overlapLeft: number;
  private fd: number | null = null;
  private nextQuotaCheck: number;
  private setupError: Error | null = null;
  private windowStart = performance.now();
  private windowBytes = 0;
  private readonly queue: Buffer[] = [];
  private queued = 0;
  private writing = false;
  /** an early flush (fdatasync) is running */
  private syncing = false;
  private written = 0;
  private flushedAt = 0;
  private ioError: NodeJS.ErrnoException | null = null;
  /** waiting for the queue to have room, or to be empty */
  private onRoom: (() => void) | null = null;
  private onIdle: (() => void)[] = [];
  private settle!: () => void;

  constructor(private readonly o: PartWriterOptions, seed: HeldState | null) {
    super({ highWaterMark: 1024 * 1024 });
    this.settled = new Promise((resolve) => (this.settle = resolve));
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
    if (o.mode === 'complete' || this.setupError) {
      this.settle();
      return;
    }
    // Opened on the thread pool while the first chunks are already being accepted.
    this.writing = true;
    open(o.path, o.mode === 'append' ? 'a' : 'w', (err, fd) => {
      this.writing = false;
      if (err) this.ioError = err;
      else this.fd = fd;
      this.pump();
    });
  }

  override _construct(callback: (error?: Error | null) => void): void {
    callback(this.setupError);
  }

  override _write(raw: Buffer, _enc: BufferEncoding, callback: (error?: Error | null) => void): void {
    try {
      if (this.ioError) throw this.ioError;
      this.received += raw.length;
      this.checkSpeed(raw.length);
      if (this.o.mode === 'complete') return callback();
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
      this.queue.push(chunk);
      this.queued += chunk.length;
      this.pump();
      const next = (): void => {
        if (this.o.declared === null && this.size >= this.nextQuotaCheck) {
          // Unknown length: keep checking free space as the body grows.
          this.nextQuotaCheck = this.size + QUOTA_RECHECK_BYTES;
          checkQuota(this.o.out, 0, this.o.minFree).then(() => callback(), callback);
          return;
        }
        callback(this.ioError);
      };
      if (this.queued < QUEUE_BYTES) next();
      else this.onRoom = next;
    } catch (err) {
      callback(err as Error);
    }
  }

  /** Writes the queue's head on the thread pool; one write in flight per part keeps the order. */
  private pump(): void {
    if (this.writing || this.fd === null) {
      if (this.fd === null && !this.writing && this.ioError) this.drained();
      return;
    }
    const chunk = this.queue.shift();
    if (!chunk) return this.drained();
    if (this.ioError) {
      this.queue.length = 0;
      this.queued = 0;
      return this.drained();
    }
    this.writing = true;
    writeAll(this.fd, chunk, (err) => {
      this.writing = false;
      this.queued -= chunk.length;
      this.written += chunk.length;
      if (err) this.ioError ??= err;
      this.flushEarly();
      if (this.onRoom && (this.queued < QUEUE_BYTES || this.ioError)) {
        const go = this.onRoom;
        this.onRoom = null;
        go();
      }
      this.pump();
    });
  }

  private flushEarly(): void {
    if (!this.o.fsync || this.syncing || this.fd === null || this.written - this.flushedAt < FLUSH_EVERY) return;
    this.syncing = true;
    this.flushedAt = this.written;
    fdatasync(this.fd, (err) => {
      this.syncing = false;
      if (err) this.ioError ??= err;
      this.drained();
    });
  }

  private drained(): void {
    if (this.onRoom && (this.queued < QUEUE_BYTES || this.ioError)) {
      const go = this.onRoom;
      this.onRoom = null;
      go();
    }
    if (!this.idle()) return;
    const waiting = this.onIdle;
    this.onIdle = [];
    for (const w of waiting) w();
  }

  /** Nothing queued, being written or flushed, and the open (if any) has completed. */
  private idle(): boolean {
    return !this.writing && !this.syncing && (this.queue.length === 0 || this.ioError !== null);
  }

  /** Runs `fn` once the part is idle (see `idle`). */
  private whenIdle(fn: () => void): void {
    if (this.idle()) fn();
    else this.onIdle.push(fn);
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
    this.whenIdle(() => {
      if (this.ioError) return callback(this.ioError);
      if (this.fd === null || !this.o.fsync) return callback();
      const t = performance.now();
      fsync(this.fd, (err) => {
        this.fsyncMs = performance.now() - t;
        callback(err);
      });
    });
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    // Every accepted byte is written before the file is closed, and it is closed exactly once
    // (its number may be reused by another file right after).
    this.whenIdle(() => {
      const fd = this.fd;
      this.fd = null;
      if (fd === null) {
        this.settle();
        return callback(err);
      }
      close(fd, () => {
        this.settle();
        callback(err);
      });
    });
  }
}

/** fs.write until the whole chunk is written (a short write on a regular file is rare, not impossible). */
function writeAll(fd: number, chunk: Buffer, done: (err: NodeJS.ErrnoException | null) => void): void {
  write(fd, chunk, 0, chunk.length, null, (err, n) => {
    if (err) return done(err);
    if (n < chunk.length) return writeAll(fd, chunk.subarray(n), done);
    done(null);
  });
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

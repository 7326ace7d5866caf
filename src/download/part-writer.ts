import { createHash, type Hash } from 'node:crypto';
import { open as openFile } from 'node:fs/promises';
import { QUOTA_RECHECK_BYTES } from '../config.js';
import { ItemError } from '../errors.js';
import type { BodySink } from '../http/fetch-into.js';
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
  /** no byte reaches the part before this resolves (its validators are committed) */
  writesAfter?: Promise<void> | null;
  /**
   * The body is whole and written, before its fsync: the moment to record it. A kill -9 from here
   * on leaves the whole part in the page cache, and the record lets the next run finalize it.
   */
  onComplete?: (body: { sha256: string; size: number }) => void;
}

/**
 * Receives a response body straight from the dispatch handler (no stream in between) with a rolling
 * SHA-256. Every chunk is checked, counted and hashed the moment it arrives, then handed to an
 * OrderedFile that writes it on the thread pool: opening, writing and closing the part never block
 * the event loop that parses the other transfers. A chunk once accepted is always written, even when
 * the connection fails right after (the part then holds every byte received, for a resume), and the
 * writer is done only when the part is closed: nothing can write to it after the attempt that
 * owned it has ended. Held bytes are read exactly once, to seed the hash.
 */
export class PartWriter implements BodySink {
  readonly hash: Hash;
  /** body bytes received by this response */
  received = 0;
  size: number;
  fsyncMs: number | null = null;
  /** which file the part is (see fileIdentity), once complete; null when nothing was written (a part only verified) */
  identity: string | null = null;
  /** the body arrived whole and passed the final checks */
  complete = false;
  /** the digest of the whole part, once complete */
  sha256: string | null = null;
  private readonly sniffer: PdfSniffer;
  private readonly tail: Buffer;
  private overlapLeft: number;
  private readonly file: OrderedFile | null;
  private nextQuotaCheck: number;
  /** the free-space check of a body of unknown length, while it runs */
  private quotaCheck: Promise<void> | null = null;
  private failure: Error | null = null;
  private closed: Promise<void> | null = null;
  private windowStart = performance.now();
  private windowBytes = 0;

  /** Throws, before any file is opened, when the declared size or the free space rule the body out. */
  constructor(private readonly o: PartWriterOptions, seed: HeldState | null) {
    const appending = o.mode !== 'fresh' && seed !== null;
    this.hash = appending ? seed.hash : createHash('sha256');
    this.sniffer = appending ? seed.sniffer : new PdfSniffer();
    this.tail = appending ? seed.tail : Buffer.alloc(0);
    this.size = appending ? o.held : 0;
    this.overlapLeft = o.overlap;
    this.nextQuotaCheck = this.size + QUOTA_RECHECK_BYTES;
    if (o.declared !== null && this.size - o.overlap + o.declared > o.maxBytes && o.mode !== 'complete') {
      throw new ItemError('too_large', `size ${this.size - o.overlap + o.declared} exceeds --max-bytes ${o.maxBytes}`, { httpStatus: o.httpStatus });
    }
    checkQuotaSync(o.out, o.declared === null || o.mode === 'complete' ? 0 : o.declared - o.overlap, o.minFree);
    // Opened on the thread pool while the first chunks are already being accepted.
    this.file = o.mode === 'complete' ? null : new OrderedFile(o.path, o.mode === 'append' ? 'a' : 'w', o.fsync, o.writesAfter ?? null);
  }

  accept(raw: Buffer, resume: () => void): boolean {
    if (this.failure) throw this.failure;
    const file = this.file;
    if (file?.error) throw file.error;
    this.received += raw.length;
    this.checkSpeed(raw.length);
    if (!file) return true;
    let chunk = raw;
    if (this.overlapLeft > 0) {
      const n = Math.min(this.overlapLeft, chunk.length);
      const at = this.tail.length - this.overlapLeft;
      if (!chunk.subarray(0, n).equals(this.tail.subarray(at, at + n))) throw new OverlapMismatch();
      this.overlapLeft -= n;
      chunk = chunk.subarray(n);
      if (chunk.length === 0) return true;
    }
    this.size += chunk.length;
    if (this.size > this.o.maxBytes) throw new ItemError('too_large', `body exceeds --max-bytes ${this.o.maxBytes}`, { httpStatus: this.o.httpStatus });
    if (!this.sniffer.push(chunk)) throw new ItemError('not_pdf', 'no %PDF- header in the first 1024 bytes', { httpStatus: this.o.httpStatus });
    this.hash.update(chunk);
    const room = file.append(chunk);
    if (this.o.declared !== null || this.size < this.nextQuotaCheck) {
      if (!room) file.whenRoom(resume);
      return room;
    }
    // Unknown length: keep checking free space as the body grows; the body waits for the answer.
    this.nextQuotaCheck = this.size + QUOTA_RECHECK_BYTES;
    this.quotaCheck = checkQuota(this.o.out, 0, this.o.minFree).then(
      () => file.whenRoom(resume),
      (err: Error) => {
        this.failure ??= err;
        resume();
      },
    );
    return false;
  }

  async end(): Promise<void> {
    try {
      await this.quotaCheck;
      if (this.failure) throw this.failure;
      if (this.overlapLeft > 0) throw new OverlapMismatch();
      if (this.o.declared !== null && this.received !== this.o.declared) {
        throw new ItemError('size_mismatch', `received ${this.received} bytes, Content-Length says ${this.o.declared}`, { httpStatus: this.o.httpStatus });
      }
      if (!this.sniffer.finish()) throw new ItemError('not_pdf', 'no %PDF- header in the body', { httpStatus: this.o.httpStatus });
      if (this.file) await written(this.file);
      this.sha256 = this.hash.digest('hex');
      this.o.onComplete?.({ sha256: this.sha256, size: this.size });
      if (this.file) ({ ms: this.fsyncMs, identity: this.identity } = await flushed(this.file, this.o.fsync));
      this.complete = true;
    } finally {
      await this.close();
    }
  }

  abort(): Promise<void> {
    return this.close();
  }

  /** Closes the part once every accepted chunk is written; the same promise for every caller. */
  close(): Promise<void> {
    const file = this.file;
    return (this.closed ??= file ? new Promise((resolve) => file.close(resolve)) : Promise.resolve());
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
}

function written(file: OrderedFile): Promise<void> {
  return new Promise((resolve, reject) => file.whenWritten((err) => (err ? reject(err) : resolve())));
}

/** Every queued chunk written, then fsync'd when asked: the fsync's duration (or null) and the file's identity. */
function flushed(file: OrderedFile, sync: boolean): Promise<{ ms: number | null; identity: string | null }> {
  return new Promise((resolve, reject) => file.finish(sync, (err, ms, identity) => (err ? reject(err) : resolve({ ms, identity }))));
}

/** Swallows a body we do not keep (redirects, errors), up to a bound. */
export class Discard implements BodySink {
  private seen = 0;
  constructor(private readonly limit = 1024 * 1024) {}
  accept(chunk: Buffer): boolean {
    this.seen += chunk.length;
    if (this.seen > this.limit) throw new DiscardOverflow();
    return true;
  }
  async end(): Promise<void> {}
  async abort(): Promise<void> {}
}

export class DiscardOverflow extends Error {}

import { close, fdatasync, fstatSync, fsync, open, writev } from 'node:fs';
import { fileIdentity } from '../store/finalize.js';

/**
 * Accepted bytes waiting for the thread pool before the writer is told to wait. Small: they are
 * what a kill -9 loses on top of the kernel's socket buffers.
 */
const QUEUE_BYTES = 256 * 1024;
/**
 * While writes wait for their gate (a group commit, at most ~25 ms away), more may queue: a body
 * that arrives that fast would otherwise sit paused for the rest of the wait.
 */
const GATED_QUEUE_BYTES = 2 * 1024 * 1024;
/**
 * With `flushEarly`, the data is flushed (fdatasync) every this many bytes while the file is still
 * being written, so the disk works alongside the network instead of all at the end.
 */
const FLUSH_EVERY = 16 * 1024 * 1024;

/**
 * A file written on the thread pool: opened, appended to in order (one write in flight at a time),
 * flushed and closed without blocking the event loop. Every appended chunk is written before the
 * file is closed, and it is closed exactly once (its number may be reused by another file right
 * after); `close` calls back only then, so nothing can write to the file afterwards.
 */
export class OrderedFile {
  /** the first I/O error; every later call reports it */
  error: NodeJS.ErrnoException | null = null;
  private fd: number | null = null;
  private readonly queue: Buffer[] = [];
  private queued = 0;
  /** an open or a write is in flight */
  private busy = true;
  /** writes wait for `writesAfter` (chunks queue up meanwhile) */
  private gated: boolean;
  private syncing = false;
  private written = 0;
  private flushedAt = 0;
  private onRoom: (() => void) | null = null;
  private onIdle: (() => void)[] = [];

  /** `writesAfter`: no byte is written before it resolves; if it rejects, that is the file's error. */
  constructor(path: string, flags: 'w' | 'a', private readonly flushEarly: boolean, writesAfter: Promise<void> | null = null) {
    this.gated = writesAfter !== null;
    writesAfter?.then(
      () => this.ungate(null),
      (err: NodeJS.ErrnoException) => this.ungate(err),
    );
    open(path, flags, (err, fd) => {
      this.busy = false;
      if (err) this.error = err;
      else this.fd = fd;
      this.pump();
    });
  }

  /** Queues a chunk; false when the queue is full: the writer should wait for `whenRoom`. */
  append(chunk: Buffer): boolean {
    this.queue.push(chunk);
    this.queued += chunk.length;
    this.pump();
    return this.room();
  }

  /**
   * `ready` is called once there is room: never before this returns, and soon when there is room
   * already (a caller that waited on something else meanwhile may find the queue drained).
   */
  whenRoom(ready: () => void): void {
    if (this.room()) queueMicrotask(ready);
    else this.onRoom = ready;
  }

  /** Once every queued chunk is written (to the page cache: a kill -9 no longer loses them). */
  whenWritten(done: (err: NodeJS.ErrnoException | null) => void): void {
    this.whenIdle(() => done(this.error));
  }

  /**
   * Once every queued chunk is written: fsync (when asked), then `done` with the time it took and
   * the file's identity (which finalize checks is still the file at the part's path).
   */
  finish(sync: boolean, done: (err: NodeJS.ErrnoException | null, fsyncMs: number | null, identity: string | null) => void): void {
    this.whenIdle(() => {
      if (this.error || this.fd === null) return done(this.error, null, null);
      const identity = fileIdentity(fstatSync(this.fd, { bigint: true }));
      if (!sync) return done(null, null, identity);
      const t = performance.now();
      fsync(this.fd, (err) => done(err, performance.now() - t, identity));
    });
  }

  /** Closes the file once every queued chunk is written. */
  close(done: () => void): void {
    this.whenIdle(() => {
      const fd = this.fd;
      this.fd = null;
      if (fd === null) done();
      else close(fd, () => done());
    });
  }

  private room(): boolean {
    return this.queued < (this.gated ? GATED_QUEUE_BYTES : QUEUE_BYTES) || this.error !== null;
  }

  private ungate(err: NodeJS.ErrnoException | null): void {
    this.gated = false;
    if (err) this.error ??= err;
    this.pump();
  }

  private pump(): void {
    if (this.busy || this.gated || this.fd === null) return this.settled();
    if (this.queue.length === 0 || this.error) {
      this.queue.length = 0;
      this.queued = 0;
      return this.settled();
    }
    // Everything queued goes in one writev: one trip to the thread pool (and one wake-up of a pool
    // thread) per batch rather than per received chunk.
    const batch = this.queue.splice(0, this.queue.length);
    let bytes = 0;
    for (const b of batch) bytes += b.length;
    this.busy = true;
    writeAll(this.fd, batch, (err) => {
      this.busy = false;
      this.queued -= bytes;
      this.written += bytes;
      if (err) this.error ??= err;
      this.flush();
      this.pump();
    });
  }

  private flush(): void {
    if (!this.flushEarly || this.syncing || this.fd === null || this.written - this.flushedAt < FLUSH_EVERY) return;
    this.syncing = true;
    this.flushedAt = this.written;
    fdatasync(this.fd, (err) => {
      this.syncing = false;
      if (err) this.error ??= err;
      this.settled();
    });
  }

  /** Lets a waiting writer go on when there is room, and idle waiters when nothing is in flight. */
  private settled(): void {
    if (this.onRoom && this.room()) {
      const go = this.onRoom;
      this.onRoom = null;
      go();
    }
    if (this.busy || this.syncing || (this.queue.length > 0 && !this.error)) return;
    const waiting = this.onIdle;
    this.onIdle = [];
    for (const w of waiting) w();
  }

  private whenIdle(fn: () => void): void {
    this.onIdle.push(fn);
    this.settled();
  }
}

/** fs.writev until every buffer is written (a short write on a regular file is rare, not impossible). */
function writeAll(fd: number, buffers: Buffer[], done: (err: NodeJS.ErrnoException | null) => void): void {
  writev(fd, buffers, (err, n) => {
    if (err) return done(err);
    let i = 0;
    while (i < buffers.length && n >= buffers[i]!.length) n -= buffers[i++]!.length;
    if (i === buffers.length) return done(null);
    const rest = buffers.slice(i);
    rest[0] = rest[0]!.subarray(n);
    writeAll(fd, rest, done);
  });
}

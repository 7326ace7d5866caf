import { hash } from 'node:crypto';
import { unlink } from 'node:fs/promises';
import { resolve } from 'node:path';
import { DURABLE_PART_BYTES, type DownloadOptions } from '../config.js';
import type { Events } from '../events.js';
import type { JobRow, Ledger, PartRow } from '../ledger/types.js';
import type { Finalized } from '../store/finalize.js';
import { placedSize, type ObjectStore } from '../store/object-store.js';
import { linkItem } from '../store/link.js';
import { objectRelPath, partPath } from '../store/paths.js';
import { readHeld } from './part-writer.js';

/**
 * Ops: each side effect of an item (its stream into a part, the part's move into the store, its
 * link) under a deterministic key, executed at most once and replayed from its stored result.
 */
export interface OpsContext {
  opts: DownloadOptions;
  ledger: Ledger;
  store: ObjectStore;
  owner: string;
  now: () => number;
  events: Events;
}

export function opKey(kind: string, jobKey: string, detail: string): string {
  return hash('sha256', `${kind}\0${jobKey}\0${detail}`, 'hex');
}

/** The stream effect of a part is identified by the job, the URL and the validators it began with. */
export function streamOpKey(jobKey: string, row: PartRow): string {
  return opKey('stream', jobKey, `${row.url}\0${row.etag ?? row.last_modified ?? ''}\0${row.total ?? ''}`);
}

/** The item's lease went to another holder before its part moved: the item stops, writing nothing more. */
export class LeaseLost extends Error {
  constructor() {
    super('lease lost before finalize');
  }
}

export interface StreamResult {
  sha256: string;
  size: number;
  /**
   * the part was fsync'd before the op was marked done. The op is now recorded before the fsync
   * (false): a replay hashes the part again. Results an earlier version recorded may say true.
   */
  fsynced?: boolean;
}

/**
 * Finalize and link are ops with deterministic keys: one already done is replayed from its stored
 * result (its object is still there), so a repeated run never moves or links twice. One begun by
 * an earlier holder whose object exists completed its move (the digest names the bytes): it is
 * finished without moving anything, as `reconcile` would.
 */
export async function finalizeOnce(ctx: OpsContext, job: JobRow, sha256: string, identity: string | null): Promise<Finalized> {
  const part = partPath(ctx.store.local, job.key);
  // A holder that lost its lease must leave no trace: the new holder owns the part now.
  if (!ctx.ledger.holds(job.key, ctx.owner, ctx.now())) throw new LeaseLost();
  const key = opKey('finalize', job.key, sha256);
  const op = ctx.ledger.beginOp(key, job.key, 'finalize', ctx.owner, ctx.now(), sha256);
  let done: Finalized;
  if (op.state !== 'new' && (await placedSize(ctx.store, part, sha256)) !== null) {
    await unlink(part).catch(() => undefined);
    done = op.state === 'done' ? (op.result as Finalized) : { path: objectRelPath(sha256), deduped: false };
    if (op.state === 'started') ctx.ledger.finishOp(key, done, ctx.now());
    ctx.events.emit('op', { kind: 'finalize', action: op.state === 'done' ? 'replayed' : 'finished', id: job.item_id, op: key });
  } else {
    // The op (and the part's stream op) are committed before the part moves: once the part is
    // gone, the started op is what lets `reconcile` give the object to its job. Without it a kill
    // after the rename leaves an object no job knows, and the body is fetched again in full.
    // The item is off the network by now, so it waits for the group's own commit rather than
    // forcing one: finalizes of many turns share it.
    await ctx.ledger.committed('with-group');
    // Checked again after the wait, right before the move, in the table itself: a holder stopped
    // past its lease meanwhile, or one whose clock lags its successor's, must not move the part
    // that successor is writing.
    if (!ctx.ledger.holdsInTable(job.key, ctx.owner, ctx.now())) throw new LeaseLost();
    const moved = await ctx.store.place(part, sha256, identity);
    if (moved === 'not-ours') throw new LeaseLost();
    done = moved;
    ctx.ledger.finishOp(key, done, ctx.now());
    ctx.events.emit('op', { kind: 'finalize', action: 'executed', id: job.item_id, op: key, deduped: done.deduped });
  }
  ctx.ledger.dropPart(job.key);
  return done;
}

/**
 * With --link-dir, a done item's view is made if its link op never completed (a crash between
 * finalize and link): so a skipped item still ends up linked.
 */
export async function linkDone(ctx: OpsContext, job: JobRow): Promise<void> {
  if (ctx.opts.linkDir && job.sha256) await link(ctx, job, job.sha256);
}

/** The link of an item this process holds, right after its finalize. */
export async function linkOnce(ctx: OpsContext, job: JobRow, sha256: string): Promise<void> {
  if (!ctx.opts.linkDir) return;
  // A holder stopped after its finalize and continued past its lease must not link: its
  // successor may have stored another version, which the link must name.
  if (!ctx.ledger.holdsInTable(job.key, ctx.owner, ctx.now())) throw new LeaseLost();
  await link(ctx, job, sha256);
}

async function link(ctx: OpsContext, job: JobRow, sha256: string): Promise<void> {
  const dir = resolve(ctx.opts.linkDir!);
  const key = opKey('link', job.key, `${sha256}\0${dir}`);
  if (ctx.ledger.beginOp(key, job.key, 'link', ctx.owner, ctx.now(), JSON.stringify({ dir, sha256 })).state === 'done') return;
  const name = await linkItem(dir, job.item_id, ctx.store.localPath(sha256)!);
  ctx.ledger.finishOp(key, { name }, ctx.now());
  ctx.events.emit('op', { kind: 'link', action: 'executed', id: job.item_id, op: key, name });
}

/**
 * A part whose stream op is done (digest stored) is replayed: finalize it without asking the
 * server again. A part that was not fsync'd (--no-fsync) is read and hashed first: a power cut can
 * leave it at its full size with other bytes, which must never be stored under the recorded
 * digest; such a part is dropped ('stale') and fetched again. Otherwise the op is (re)marked
 * started and the transfer proceeds.
 */
export async function replayStream(ctx: OpsContext, job: JobRow, row: PartRow | undefined, held: number): Promise<StreamResult | 'stale' | null> {
  if (!row) return null;
  const op = ctx.ledger.beginOp(streamOpKey(job.key, row), job.key, 'stream', ctx.owner, ctx.now(), row.url);
  const result = op.result as StreamResult | null;
  if (op.state !== 'done' || !result || result.size !== held) return null;
  if (result.fsynced === true) return result;
  const { hash: digest } = await readHeld(partPath(ctx.store.local, job.key), held, 0);
  if (digest.digest('hex') === result.sha256) return result;
  await discardPart(ctx, job);
  ctx.events.emit('op', { kind: 'stream', action: 'discarded', id: job.item_id });
  return 'stale';
}

/**
 * Drops the item's part and its row. Only its holder may: a holder stopped past its lease and
 * continued would otherwise delete the part its successor is writing (which then ends `not-ours`
 * at finalize, and its body is fetched again in full).
 */
export async function discardPart(ctx: OpsContext, job: JobRow): Promise<void> {
  if (!ctx.ledger.holds(job.key, ctx.owner, ctx.now())) throw new LeaseLost();
  await unlink(partPath(ctx.store.local, job.key)).catch(() => undefined);
  ctx.ledger.dropPart(job.key);
}

/**
 * The stream op of one attempt's part. A large body (or one of unknown length) stores its part row
 * and begins its op before its first byte, which waits for the group commit that holds them: a
 * large part on disk always has its validators. A body declared smaller than DURABLE_PART_BYTES
 * has both written when it ends (or when its attempt fails and keeps the part): two ledger writes
 * fewer a file; a kill in the middle leaves a part without validators, which the next run
 * continues through the overlap check or fetches again (at most that many bytes).
 */
export class StreamOp {
  private key: string | null;
  /** validators of a fresh small body, not written yet */
  private small: PartRow | null = null;

  /** `continuing`: the row of the part this attempt continues, if any */
  constructor(private readonly ctx: OpsContext, private readonly job: JobRow, continuing: PartRow | undefined) {
    this.key = continuing ? streamOpKey(job.key, continuing) : null;
  }

  /** A fresh body's validators, before its first byte: the promise its bytes wait for, if any. */
  fresh(row: PartRow): Promise<void> | null {
    const { ctx, job } = this;
    this.key = null;
    if (row.total !== null && row.total < DURABLE_PART_BYTES) {
      this.small = row;
      return null;
    }
    ctx.ledger.savePart(job.key, row, ctx.now());
    this.key = streamOpKey(job.key, row);
    ctx.ledger.beginOp(this.key, job.key, 'stream', ctx.owner, ctx.now(), row.url);
    // The bytes queue in memory (up to GATED_QUEUE_BYTES) until the group's own commit: a commit
    // forced for each large body cost more of the event loop than the wait costs the body.
    return ctx.ledger.committed('with-group');
  }

  /**
   * The body is whole in the part, before its fsync: the op is done with its digest. Marked not
   * fsync'd, so a replay hashes the part again first (a power cut may have lost its bytes).
   */
  done(body: { sha256: string; size: number }): void {
    const result: StreamResult = { ...body, fsynced: false };
    const { ctx, job, small } = this;
    if ((small || this.key) && !this.holds()) return;
    if (small) {
      // A small body's part row and its stream op, begun and finished at once: two writes.
      ctx.ledger.savePart(job.key, small, ctx.now());
      ctx.ledger.recordOp(streamOpKey(job.key, small), job.key, 'stream', ctx.owner, ctx.now(), small.url, result);
    } else if (this.key) {
      ctx.ledger.finishOp(this.key, result, ctx.now());
    }
    if (small || this.key) ctx.events.emit('op', { kind: 'stream', action: 'executed', id: job.item_id, bytes: result.size });
  }

  /** The attempt failed and keeps its part for the next one: a small body's validators go with it. */
  kept(): void {
    if (this.small && this.holds()) this.ctx.ledger.savePart(this.job.key, this.small, this.ctx.now());
  }

  /** Part rows and stream ops are written by the job's holder only (see discardPart). */
  private holds(): boolean {
    return this.ctx.ledger.holds(this.job.key, this.ctx.owner, this.ctx.now());
  }
}

import { hash } from 'node:crypto';
import { statSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pRetry from 'p-retry';
import { DURABLE_PART_BYTES, type DownloadOptions } from '../config.js';
import { ItemError, type Reason } from '../errors.js';
import type { HttpClient } from '../http/client.js';
import { actionFor, keepsPart, laterFor, type Later } from '../http/classify.js';
import { backoffDelay } from '../http/retry-after.js';
import type { Events } from '../events.js';
import type { HostHeaders } from '../hosts/headers.js';
import type { UrlPolicy } from '../http/url-policy.js';
import type { AttemptRow, JobRow, Ledger, Outcome, PartRow } from '../ledger/types.js';
import { redactCredentials } from '../manifest/canonical-url.js';
import type { Candidate, Item } from '../manifest/parse.js';
import { finalizePart, objectExists, type Finalized } from '../store/finalize.js';
import { linkItem } from '../store/link.js';
import { objectPath, objectRelPath, partPath } from '../store/paths.js';
import { readHeld } from './part-writer.js';
import { emptyFacts, transfer, type AttemptFacts, type RequestGate, type TransferResult } from './transfer.js';

export interface ItemContext {
  opts: DownloadOptions;
  ledger: Ledger;
  http: HttpClient;
  owner: string;
  headers: Record<string, string>;
  policy: UrlPolicy;
  hostHeaders: HostHeaders;
  signal: AbortSignal;
  now: () => number;
  gate: RequestGate;
  events: Events;
  /** nothing more of this item goes to the network: its pool slot may start another transfer */
  release: () => void;
  /** the item waits (a backoff): its network slot goes back until its next request */
  pause: () => void;
}

export interface ItemResult {
  outcome: Outcome;
  canonicalUrl: string | null;
  /** why a failed item failed, in words (the record's `message`) */
  message?: string;
  /** a failed item: when a later run should ask again (any candidate that failed transiently decides) */
  later?: Later;
}

function opKey(kind: string, jobKey: string, detail: string): string {
  return hash('sha256', `${kind}\0${jobKey}\0${detail}`, 'hex');
}

/** The item's lease went to another holder before its part moved: the item stops, writing nothing more. */
export class LeaseLost extends Error {
  constructor() {
    super('lease lost before finalize');
  }
}

/**
 * Finalize and link are ops with deterministic keys: one already done is replayed from its stored
 * result (its object is still there), so a repeated run never moves or links twice. One begun by
 * an earlier holder whose object exists completed its move (the digest names the bytes): it is
 * finished without moving anything, as `reconcile` would.
 */
async function finalizeOnce(ctx: ItemContext, job: JobRow, part: string, sha256: string): Promise<Finalized> {
  // A holder that lost its lease must leave no trace: the new holder owns the part now.
  if (!ctx.ledger.holds(job.key, ctx.owner, ctx.now())) throw new LeaseLost();
  const key = opKey('finalize', job.key, sha256);
  const op = ctx.ledger.beginOp(key, job.key, 'finalize', ctx.owner, ctx.now(), sha256);
  let done: Finalized;
  if (op.state !== 'new' && objectExists(ctx.opts.out, sha256)) {
    await unlink(part).catch(() => undefined);
    done = op.state === 'done' ? (op.result as Finalized) : { path: objectRelPath(sha256), deduped: false };
    if (op.state === 'started') ctx.ledger.finishOp(key, done, ctx.now());
    ctx.events.emit('op', { kind: 'finalize', action: op.state === 'done' ? 'replayed' : 'finished', id: job.item_id, op: key });
  } else {
    // The op (and the part's stream op) are committed before the part moves: once the part is
    // gone, the started op is what lets `reconcile` give the object to its job. Without it a kill
    // after the rename leaves an object no job knows, and the body is fetched again in full.
    await ctx.ledger.committed();
    // Checked again after the wait, right before the move: a holder stopped past its lease
    // meanwhile must not move the part its successor is writing.
    if (!ctx.ledger.holds(job.key, ctx.owner, ctx.now())) throw new LeaseLost();
    done = await finalizePart(ctx.opts.out, part, sha256, ctx.opts.fsync);
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
export async function linkDone(ctx: Pick<ItemContext, 'opts' | 'ledger' | 'owner' | 'now' | 'events'>, job: JobRow): Promise<void> {
  if (ctx.opts.linkDir && job.sha256) await linkOnce(ctx, job, job.sha256);
}

async function linkOnce(ctx: Pick<ItemContext, 'opts' | 'ledger' | 'owner' | 'now' | 'events'>, job: JobRow, sha256: string): Promise<void> {
  if (!ctx.opts.linkDir) return;
  const dir = resolve(ctx.opts.linkDir);
  const key = opKey('link', job.key, `${sha256}\0${dir}`);
  if (ctx.ledger.beginOp(key, job.key, 'link', ctx.owner, ctx.now(), JSON.stringify({ dir, sha256 })).state === 'done') return;
  const name = await linkItem(dir, job.item_id, objectPath(ctx.opts.out, sha256));
  ctx.ledger.finishOp(key, { name }, ctx.now());
  ctx.events.emit('op', { kind: 'link', action: 'executed', id: job.item_id, op: key, name });
}

interface Tried {
  error: ItemError;
  facts: AttemptFacts;
  candidate: Candidate;
}

/** The stream effect of a part is identified by the job, the URL and the validators it began with. */
export function streamOpKey(jobKey: string, row: PartRow): string {
  return opKey('stream', jobKey, `${row.url}\0${row.etag ?? row.last_modified ?? ''}\0${row.total ?? ''}`);
}

interface StreamResult {
  sha256: string;
  size: number;
  /** the part was fsync'd before the op was marked done (absent from results earlier versions recorded) */
  fsynced?: boolean;
}

/**
 * A part whose stream op is done (digest stored) is replayed: finalize it without asking the
 * server again. A part that was not fsync'd (--no-fsync) is read and hashed first: a power cut can
 * leave it at its full size with other bytes, which must never be stored under the recorded
 * digest; such a part is dropped ('stale') and fetched again. Otherwise the op is (re)marked
 * started and the transfer proceeds.
 */
async function replayStream(ctx: ItemContext, job: JobRow, row: PartRow | undefined, held: number): Promise<StreamResult | 'stale' | null> {
  if (!row) return null;
  const op = ctx.ledger.beginOp(streamOpKey(job.key, row), job.key, 'stream', ctx.owner, ctx.now(), row.url);
  const result = op.result as StreamResult | null;
  if (op.state !== 'done' || !result || result.size !== held) return null;
  if (result.fsynced === true) return result;
  const { hash: digest } = await readHeld(partPath(ctx.opts.out, job.key), held, 0);
  if (digest.digest('hex') === result.sha256) return result;
  await discardPart(ctx, job);
  ctx.events.emit('op', { kind: 'stream', action: 'discarded', id: job.item_id });
  return 'stale';
}

/** Bytes of a part left by an earlier attempt or run (usually none: checked in place, see objectExists). */
function heldBytes(path: string): number {
  try {
    return statSync(path, { throwIfNoEntry: false })?.size ?? 0;
  } catch {
    return 0;
  }
}

/** A transfer that worked; its attempt row is written once the outcome (stored, deduped…) is known. */
type Fetched = TransferResult & { recordAttempt: (extra: Partial<AttemptRow>) => void };

/**
 * One URL with its retries, on p-retry: the classification table decides what is retried, and
 * the backoff (full jitter) is awaited in `shouldRetry` with the network slot given back. A
 * Retry-After is not slept here: it pauses the whole host in the gate, which the next attempt
 * passes (or is deferred by, freeing the item's slots). Errors other than ItemError (Deferred,
 * a lost lease, a bug) are never retried and pass through unchanged.
 */
async function tryCandidate(ctx: ItemContext, job: JobRow, candidate: Candidate, attempts: { n: number }, previous: JobRow | null): Promise<Fetched | Tried> {
  let last: Tried | null = null;
  try {
    return await pRetry(
      async () => {
        const out = await attemptOnce(ctx, job, candidate, attempts, previous);
        if ('error' in out) {
          last = out;
          throw out.error;
        }
        return out;
      },
      {
        retries: ctx.opts.retries,
        minTimeout: 0,
        maxTimeout: 0,
        shouldRetry: async ({ error, attemptNumber }) => {
          if (!(error instanceof ItemError) || actionFor(error.code) !== 'retry' || ctx.signal.aborted || !last) return false;
          const delay = backoffDelay(attemptNumber - 1, ctx.opts.retryDelay);
          ctx.events.emit('retry_scheduled', { id: job.item_id, url: candidate.href, attempt: attemptNumber, delay_ms: delay, cause: error.code });
          ctx.pause();
          try {
            await sleep(delay, undefined, { signal: ctx.signal });
          } catch {
            last = { ...last, error: new ItemError('interrupted', 'interrupted during backoff') };
            return false;
          }
          return true;
        },
      },
    );
  } catch (err) {
    const tried = last as Tried | null;
    if (tried && (err === tried.error || tried.error.code === 'interrupted')) return tried;
    throw err;
  }
}

/**
 * One attempt at one URL. A part survives a failure that a retry may fix (and an interruption),
 * so the next attempt, or the next run, continues it; any other failure drops it.
 */
async function attemptOnce(ctx: ItemContext, job: JobRow, candidate: Candidate, attempts: { n: number }, previous: JobRow | null): Promise<Fetched | Tried> {
  const part = partPath(ctx.opts.out, job.key);
  const conditional = previous && previous.url === candidate.href ? { etag: previous.etag, lastModified: previous.last_modified } : undefined;
  const facts = emptyFacts();
  const started = ctx.now();
  attempts.n += 1;
  /** validators of a fresh small body: recorded once it is complete, or when a failed attempt keeps its part */
  let smallRow = null as PartRow | null;
  const record = (error: string | null, extra: Partial<AttemptRow> = {}): void => {
    ctx.ledger.recordAttempt({ job_key: job.key, url: candidate.href, final_url: facts.finalUrl, http_status: facts.httpStatus, bytes: facts.bytes, elapsed_ms: ctx.now() - started, error, resume_from: facts.resumeFrom, resume_decision: facts.decision, started_at: started, ...extra });
    ctx.events.emit('resume_decision', { id: job.item_id, url: candidate.href, decision: facts.decision, resume_from: facts.resumeFrom, bytes: facts.bytes, error });
  };
  try {
    let held = conditional ? 0 : heldBytes(part);
    // No bytes held (the usual case): nothing to continue or replay, so no look-up.
    let partRow = conditional || held === 0 ? undefined : ctx.ledger.getPart(job.key);
    const replayed = await replayStream(ctx, job, partRow, held);
    if (replayed === 'stale') {
      held = 0;
      partRow = undefined;
    } else if (replayed) {
      facts.decision = 'replay:stream';
      facts.resumeFrom = held;
      ctx.events.emit('op', { kind: 'stream', action: 'replayed', id: job.item_id });
      ctx.release();
      return { ...facts, sha256: replayed.sha256, size: replayed.size, fsyncMs: null, notModified: false, recordAttempt: (extra) => record(null, extra) };
    }
    let streamKey = partRow ? streamOpKey(job.key, partRow) : null;
    const result = await transfer(
      {
        url: candidate.href,
        part,
        out: ctx.opts.out,
        headers: ctx.headers,
        auth: candidate.auth,
        policy: ctx.policy,
        hostHeaders: ctx.hostHeaders,
        dispatcher: await ctx.http.dispatcher(),
        maxBytes: ctx.opts.maxBytes,
        minFree: ctx.opts.minFree,
        minSpeed: { bytesPerSecond: ctx.opts.minSpeed, windowMs: ctx.opts.stallTimeout },
        fsync: ctx.opts.fsync,
        signal: ctx.signal,
        held,
        partRow,
        conditional,
        gate: ctx.gate,
        onFreshPart: (row) => {
          streamKey = null;
          if (isSmall(row)) {
            // Recorded when the body is complete, or when the attempt fails and keeps its part.
            smallRow = row;
            return null;
          }
          ctx.ledger.savePart(job.key, row, ctx.now());
          streamKey = streamOpKey(job.key, row);
          ctx.ledger.beginOp(streamKey, job.key, 'stream', ctx.owner, ctx.now(), row.url);
          // The first byte waits for the group's commit, so a large part on disk always has its
          // validators; its bytes queue (and the connection pauses) meanwhile.
          return ctx.ledger.committed();
        },
      },
      facts,
    );
    if (!result.notModified) {
      const streamed: StreamResult = { sha256: result.sha256, size: result.size, fsynced: ctx.opts.fsync };
      if (smallRow) {
        // A small body's part row and its stream op, begun and finished at once: two writes.
        ctx.ledger.savePart(job.key, smallRow, ctx.now());
        ctx.ledger.recordOp(streamOpKey(job.key, smallRow), job.key, 'stream', ctx.owner, ctx.now(), smallRow.url, streamed);
      } else if (streamKey) {
        ctx.ledger.finishOp(streamKey, streamed, ctx.now());
      }
      if (smallRow || streamKey) ctx.events.emit('op', { kind: 'stream', action: 'executed', id: job.item_id, bytes: result.size });
    }
    if (!result.notModified && job.expected_sha256 && result.sha256 !== job.expected_sha256) {
      record('checksum_mismatch', { sha256: result.sha256 });
      await discardPart(ctx, job);
      return { candidate, facts, error: new ItemError('checksum_mismatch', `expected sha256 ${job.expected_sha256}, got ${result.sha256}`, { httpStatus: facts.httpStatus }) };
    }
    // What is left (finalize, link) is local: another transfer may start.
    ctx.release();
    return { ...result, recordAttempt: (extra) => record(null, extra) };
  } catch (err) {
    const error = err instanceof ItemError ? err : (() => { throw err; })();
    record(error.code);
    if (!keepsPart(error.code)) await discardPart(ctx, job);
    else if (smallRow) ctx.ledger.savePart(job.key, smallRow, ctx.now());
    return { candidate, facts, error };
  }
}

/**
 * A body declared smaller than DURABLE_PART_BYTES has its part row and stream op written when it
 * ends (or when its attempt fails and keeps the part) rather than before its first byte: two
 * ledger writes fewer a file. A kill in the middle of it leaves a part without validators, which
 * the next run continues through the overlap check or fetches again: at most that many bytes.
 */
function isSmall(row: PartRow): boolean {
  return row.total !== null && row.total < DURABLE_PART_BYTES;
}

async function discardPart(ctx: ItemContext, job: JobRow): Promise<void> {
  await unlink(partPath(ctx.opts.out, job.key)).catch(() => undefined);
  ctx.ledger.dropPart(job.key);
}

function failure(reason: Reason, attempts: number, elapsed: number, last?: Tried): Outcome {
  return {
    state: 'failed',
    status: 'failed',
    reason,
    http_status: last?.error.httpStatus ?? last?.facts.httpStatus ?? null,
    url: last?.candidate.href ?? null,
    final_url: last?.facts.finalUrl ?? null,
    sha256: null,
    bytes: null,
    path: null,
    content_type: last?.facts.contentType ?? null,
    etag: last?.facts.etag ?? null,
    last_modified: last?.facts.lastModified ?? null,
    resumed_from: last?.facts.resumeFrom ?? 0,
    attempts,
    elapsed_ms: elapsed,
  };
}

/**
 * The orchestrator for one claimed item: every candidate URL in order until one gives a PDF.
 * `previous` is the done row when revalidating (--revalidate): its validators are sent, and a 304
 * or the same bytes again make the item `unchanged`.
 */
export async function downloadItem(ctx: ItemContext, item: Item, job: JobRow, previous: JobRow | null = null): Promise<ItemResult> {
  const started = ctx.now();
  const attempts = { n: 0 };
  if (item.candidates.length === 0) {
    const blocked = item.blocked[0];
    const message = blocked ? `${redactCredentials(blocked)} is not an http(s) URL docstokg may fetch` : 'the line names no URL to fetch';
    return { outcome: { ...failure(blocked ? 'blocked' : 'no_url', 0, 0), url: blocked ?? null }, canonicalUrl: blocked ?? null, message, later: 'never' };
  }
  let last: Tried | undefined;
  let later: Later = 'never';
  for (const candidate of item.candidates) {
    const tried = await tryCandidate(ctx, job, candidate, attempts, previous);
    if ('error' in tried) {
      last = tried;
      const l = laterFor(tried.error.code);
      if (l === 'backoff' || later !== 'backoff') later = l;
      if (actionFor(tried.error.code) === 'stop') break;
      continue;
    }
    const base = {
      state: 'done' as const,
      reason: null,
      http_status: tried.httpStatus,
      url: candidate.href,
      final_url: tried.finalUrl,
      etag: tried.etag,
      last_modified: tried.lastModified,
      attempts: attempts.n,
      elapsed_ms: ctx.now() - started,
    };
    if (tried.notModified || (previous && tried.sha256 === previous.sha256)) {
      if (!tried.notModified) await discardPart(ctx, job);
      tried.recordAttempt({ dedup: 'unchanged', sha256: previous!.sha256, path: previous!.path, fsync_ms: tried.notModified ? null : tried.fsyncMs });
      return {
        canonicalUrl: candidate.canonical,
        outcome: { ...base, status: 'unchanged', sha256: previous!.sha256, bytes: previous!.bytes, path: previous!.path, content_type: tried.contentType ?? previous!.content_type, resumed_from: 0 },
      };
    }
    const fin = await finalizeOnce(ctx, job, partPath(ctx.opts.out, job.key), tried.sha256);
    tried.recordAttempt({ dedup: fin.deduped ? 'deduped' : 'stored', sha256: tried.sha256, path: fin.path, fsync_ms: tried.fsyncMs });
    await linkOnce(ctx, job, tried.sha256);
    return {
      canonicalUrl: candidate.canonical,
      outcome: { ...base, status: fin.deduped ? 'deduped' : 'downloaded', sha256: tried.sha256, bytes: tried.size, path: fin.path, content_type: tried.contentType, resumed_from: tried.resumeFrom },
    };
  }
  return { outcome: failure(last!.error.code, attempts.n, ctx.now() - started, last), canonicalUrl: last!.candidate.canonical, message: last!.error.message, later };
}

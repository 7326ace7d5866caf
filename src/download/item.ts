import { createHash } from 'node:crypto';
import { unlink } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Dispatcher } from 'undici';
import type { DownloadOptions } from '../config.js';
import { ItemError, type Reason } from '../errors.js';
import { actionFor } from '../http/classify.js';
import { backoffDelay } from '../http/retry-after.js';
import type { JobRow, Ledger, Outcome } from '../ledger/types.js';
import type { Candidate, Item } from '../manifest/parse.js';
import { finalizePart, objectExists, type Finalized } from '../store/finalize.js';
import { linkItem } from '../store/link.js';
import { objectPath, partPath } from '../store/paths.js';
import { transfer, type AttemptFacts, type Transferred } from './transfer.js';

export interface ItemContext {
  opts: DownloadOptions;
  ledger: Ledger;
  dispatcher: Dispatcher;
  owner: string;
  headers: Record<string, string>;
  signal: AbortSignal;
  now: () => number;
}

export interface ItemResult {
  outcome: Outcome;
  canonicalUrl: string | null;
}

function opKey(kind: string, jobKey: string, detail: string): string {
  return createHash('sha256').update(`${kind}\0${jobKey}\0${detail}`).digest('hex');
}

const emptyFacts = (): AttemptFacts => ({ finalUrl: null, httpStatus: null, bytes: 0, contentType: null, etag: null, lastModified: null });

/**
 * Finalize and link are ops with deterministic keys: one already done is replayed from its stored
 * result (its object is still there), so a repeated run never moves or links twice.
 */
async function finalizeOnce(ctx: ItemContext, job: JobRow, part: string, sha256: string): Promise<Finalized> {
  const key = opKey('finalize', job.key, sha256);
  const op = ctx.ledger.beginOp(key, job.key, 'finalize', ctx.owner, ctx.now());
  if (op.state === 'done' && (await objectExists(ctx.opts.out, sha256))) {
    await unlink(part).catch(() => undefined);
    return op.result as Finalized;
  }
  const done = await finalizePart(ctx.opts.out, part, sha256, ctx.opts.fsync);
  ctx.ledger.finishOp(key, done, ctx.now());
  return done;
}

async function linkOnce(ctx: ItemContext, job: JobRow, sha256: string): Promise<void> {
  if (!ctx.opts.linkDir) return;
  const key = opKey('link', job.key, sha256);
  if (ctx.ledger.beginOp(key, job.key, 'link', ctx.owner, ctx.now()).state === 'done') return;
  const name = await linkItem(ctx.opts.linkDir, job.item_id, objectPath(ctx.opts.out, sha256));
  ctx.ledger.finishOp(key, { name }, ctx.now());
}

interface Tried {
  error: ItemError;
  facts: AttemptFacts;
  candidate: Candidate;
}

/** One URL with its retries. Returns the transfer, or the last failure and what it means. */
async function tryCandidate(ctx: ItemContext, job: JobRow, candidate: Candidate, attempts: { n: number }): Promise<Transferred | Tried> {
  const part = partPath(ctx.opts.out, job.key);
  for (let retry = 0; ; retry += 1) {
    const facts = emptyFacts();
    const started = ctx.now();
    attempts.n += 1;
    try {
      const result = await transfer(
        {
          url: candidate.href,
          part,
          out: ctx.opts.out,
          headers: ctx.headers,
          dispatcher: ctx.dispatcher,
          maxBytes: ctx.opts.maxBytes,
          minFree: ctx.opts.minFree,
          fsync: ctx.opts.fsync,
          signal: ctx.signal,
        },
        facts,
      );
      ctx.ledger.recordAttempt({ job_key: job.key, url: candidate.href, final_url: facts.finalUrl, http_status: facts.httpStatus, bytes: facts.bytes, elapsed_ms: ctx.now() - started, error: null, resume_from: 0, resume_decision: 'fresh', started_at: started });
      if (job.expected_sha256 && result.sha256 !== job.expected_sha256) {
        await unlink(part).catch(() => undefined);
        return { candidate, facts, error: new ItemError('checksum_mismatch', `expected sha256 ${job.expected_sha256}, got ${result.sha256}`, { httpStatus: facts.httpStatus }) };
      }
      return result;
    } catch (err) {
      const error = err instanceof ItemError ? err : (() => { throw err; })();
      ctx.ledger.recordAttempt({ job_key: job.key, url: candidate.href, final_url: facts.finalUrl, http_status: facts.httpStatus, bytes: facts.bytes, elapsed_ms: ctx.now() - started, error: error.code, resume_from: 0, resume_decision: 'fresh', started_at: started });
      if (error.code !== 'interrupted') await unlink(part).catch(() => undefined);
      const action = actionFor(error.code);
      if (action !== 'retry' || retry >= ctx.opts.retries || ctx.signal.aborted) return { candidate, facts, error };
      const delay = Math.max(backoffDelay(retry, ctx.opts.retryDelay), error.retryAfterMs ?? 0);
      try {
        await sleep(delay, undefined, { signal: ctx.signal });
      } catch {
        return { candidate, facts, error: new ItemError('interrupted', 'interrupted during backoff') };
      }
    }
  }
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
    resumed_from: 0,
    attempts,
    elapsed_ms: elapsed,
  };
}

/** The orchestrator for one claimed item: every candidate URL in order until one gives a PDF. */
export async function downloadItem(ctx: ItemContext, item: Item, job: JobRow): Promise<ItemResult> {
  const started = ctx.now();
  const attempts = { n: 0 };
  if (item.candidates.length === 0) {
    const reason = item.blocked.length > 0 ? 'blocked' : 'no_url';
    return { outcome: { ...failure(reason, 0, 0), url: item.blocked[0] ?? null }, canonicalUrl: item.blocked[0] ?? null };
  }
  let last: Tried | undefined;
  for (const candidate of item.candidates) {
    const tried = await tryCandidate(ctx, job, candidate, attempts);
    if ('error' in tried) {
      last = tried;
      if (actionFor(tried.error.code) === 'stop') break;
      continue;
    }
    const fin = await finalizeOnce(ctx, job, partPath(ctx.opts.out, job.key), tried.sha256);
    await linkOnce(ctx, job, tried.sha256);
    return {
      canonicalUrl: candidate.canonical,
      outcome: {
        state: 'done',
        status: fin.deduped ? 'deduped' : 'downloaded',
        reason: null,
        http_status: tried.httpStatus,
        url: candidate.href,
        final_url: tried.finalUrl,
        sha256: tried.sha256,
        bytes: tried.bytes,
        path: fin.path,
        content_type: tried.contentType,
        etag: tried.etag,
        last_modified: tried.lastModified,
        resumed_from: 0,
        attempts: attempts.n,
        elapsed_ms: ctx.now() - started,
      },
    };
  }
  return { outcome: failure(last!.error.code, attempts.n, ctx.now() - started, last), canonicalUrl: last!.candidate.canonical };
}

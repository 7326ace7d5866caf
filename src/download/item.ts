import { setTimeout as sleep } from 'node:timers/promises';
import pRetry from 'p-retry';
import type { DownloadOptions } from '../config.js';
import { ItemError, type Reason } from '../errors.js';
import type { Events } from '../events.js';
import type { HostHeaders } from '../hosts/headers.js';
import { actionFor, laterFor, type Later } from '../http/classify.js';
import type { HttpClient } from '../http/client.js';
import { backoffDelay } from '../http/retry-after.js';
import type { UrlPolicy } from '../http/url-policy.js';
import type { JobRow, Ledger, Outcome } from '../ledger/types.js';
import { redactCredentials } from '../manifest/canonical-url.js';
import type { Item } from '../manifest/parse.js';
import { gateKey } from '../hosts/policy.js';
import { HtmlPage } from './page-sink.js';
import { initialTargets, Targets, type ResolveServices, type Target, type TargetState } from './targets.js';
import { attemptOnce, type Fetched, type Tried } from './attempt.js';
import { discardPart, finalizeOnce, linkOnce } from './ops.js';
import type { RequestGate } from '../http/request-gate.js';
import type { ObjectStore } from '../store/object-store.js';

export interface ItemContext {
  opts: DownloadOptions;
  ledger: Ledger;
  store: ObjectStore;
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
  offNetwork: () => void;
  /** the item waits (a backoff): its network slot goes back until its next request */
  pause: () => void;
  /** resolvers, landing pages and their cache; null when the run has none */
  resolve: ResolveServices | null;
}

export interface ItemResult {
  outcome: Outcome;
  canonicalUrl: string | null;
  /** why a failed item failed, in words (the record's `message`) */
  message?: string;
  /** a failed item: when a later run should ask again (any candidate that failed transiently decides) */
  later?: Later;
}

/**
 * One URL with its retries, on p-retry: the classification table decides what is retried, and
 * the backoff (full jitter) is awaited in `shouldRetry` with the network slot given back. A
 * Retry-After is not slept here: it pauses the whole host in the gate, which the next attempt
 * passes (or is deferred by, freeing the item's slots). Errors other than ItemError (Deferred,
 * a lost lease, a bug) are never retried and pass through unchanged.
 */
async function tryCandidate(ctx: ItemContext, job: JobRow, target: Target, attempts: { n: number }, previous: JobRow | null): Promise<Fetched | Tried> {
  const { candidate } = target;
  const how = { role: target.role, readPages: (ctx.resolve?.config.landing ?? false) && !target.fromPage };
  let last: Tried | null = null;
  try {
    return await pRetry(
      async () => {
        const out = await attemptOnce(ctx, job, candidate, attempts, previous, how);
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

/** An item placed by its resolvers waits in the queue of its first PDF host, not of their API. */
export class Rehome extends Error {
  constructor(
    readonly state: TargetState,
    readonly home: string,
  ) {
    super(`rehomed to ${home}`);
  }
}

/** What the item came to, from the attempt that stored it. */
function stored(target: Target, tried: Fetched, attempts: number, elapsed: number) {
  return {
    state: 'done' as const,
    reason: null,
    http_status: tried.httpStatus,
    url: target.candidate.href,
    final_url: tried.finalUrl,
    etag: tried.etag,
    last_modified: tried.lastModified,
    attempts,
    elapsed_ms: elapsed,
    resolver: target.resolver,
    landing_url: target.landingUrl,
  };
}

/**
 * The orchestrator for one claimed item: every URL in order (the manifest's, then what resolvers
 * and landing pages name, see Targets) until one gives a PDF. `previous` is the done row when
 * revalidating (--revalidate): its validators are sent, and a 304 or the same bytes again make the
 * item `unchanged`. `home` is the queue the item waits in: one that waited at a resolver's API
 * goes to its first PDF host's queue once placed (Rehome).
 */
export async function downloadItem(ctx: ItemContext, item: Item, job: JobRow, previous: JobRow | null = null, state: TargetState = initialTargets(item), home = ''): Promise<ItemResult> {
  const started = ctx.now();
  const attempts = { n: 0 };
  if (item.candidates.length === 0 && item.blocked.length > 0 && !item.ids) {
    const blocked = item.blocked[0]!;
    return { outcome: { ...failure('blocked', 0, 0), url: blocked }, canonicalUrl: blocked, message: `${redactCredentials(blocked)} is not an http(s) URL docstokg may fetch`, later: 'never' };
  }
  const targets = new Targets({ resolve: ctx.resolve, dispatcher: () => ctx.http.dispatcher(), policy: ctx.policy, gate: ctx.gate, signal: ctx.signal, events: ctx.events }, item, state);
  let last: Tried | undefined;
  let later: Later = 'never';
  for (let target = await targets.next(); target; target = await targets.next()) {
    const key = gateKey(target.candidate.host, target.role);
    if (home.startsWith('metadata ') && key !== home) {
      state.queue.unshift(target);
      state.tried.delete(target.candidate.canonical);
      throw new Rehome(state, key);
    }
    const tried = await tryCandidate(ctx, job, target, attempts, previous);
    if ('error' in tried) {
      last = tried;
      const l = laterFor(tried.error.code);
      if (l === 'backoff' || later !== 'backoff') later = l;
      if (tried.error instanceof HtmlPage) await targets.fromPage(target, tried.error);
      if (actionFor(tried.error.code) === 'stop') break;
      continue;
    }
    const base = stored(target, tried, attempts.n, ctx.now() - started);
    if (tried.notModified || (previous && tried.sha256 === previous.sha256)) {
      if (!tried.notModified) await discardPart(ctx, job);
      tried.recordAttempt({ dedup: 'unchanged', sha256: previous!.sha256, path: previous!.path, fsync_ms: tried.notModified ? null : tried.fsyncMs });
      return {
        canonicalUrl: target.candidate.canonical,
        outcome: { ...base, status: 'unchanged', sha256: previous!.sha256, bytes: previous!.bytes, path: previous!.path, content_type: tried.contentType ?? previous!.content_type, resumed_from: 0 },
      };
    }
    const fin = await finalizeOnce(ctx, job, tried.sha256, tried.partId);
    tried.recordAttempt({ dedup: fin.deduped ? 'deduped' : 'stored', sha256: tried.sha256, path: fin.path, fsync_ms: tried.fsyncMs });
    await linkOnce(ctx, job, tried.sha256);
    return {
      canonicalUrl: target.candidate.canonical,
      outcome: { ...base, status: fin.deduped ? 'deduped' : 'downloaded', sha256: tried.sha256, bytes: tried.size, path: fin.path, content_type: tried.contentType, resumed_from: tried.resumeFrom },
    };
  }
  if (!last) return noUrl(item, state);
  const message = state.notes.length > 0 ? `${last.error.message}; ${state.notes.join('; ')}` : last.error.message;
  return { outcome: failure(last.error.code, attempts.n, ctx.now() - started, last), canonicalUrl: last.candidate.canonical, message, later };
}

/** No URL to try: none given, and no resolver could place the work (an API that could not be asked may, later). */
function noUrl(item: Item, state: TargetState): ItemResult {
  const why = item.ids ? `no resolver found a URL${state.notes.length > 0 ? `: ${state.notes.join('; ')}` : ''}` : 'the line names no URL to fetch';
  return { outcome: failure('no_url', 0, 0), canonicalUrl: null, message: why, later: state.unreachable ? 'backoff' : 'never' };
}

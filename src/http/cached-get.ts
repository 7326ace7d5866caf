import type { Dispatcher } from 'undici';
import { ItemError, LookupError } from '../errors.js';
import { gateKey, type Role } from '../hosts/policy.js';
import type { CacheStore } from '../ledger/types.js';
import { MAX_REDIRECTS } from '../config.js';
import { toItemError } from './classify.js';
import { loadLookups } from './undici.js';
import type { RequestGate, RequestPermit } from './request-gate.js';
import { parseRetryAfter } from './retry-after.js';
import type { UrlPolicy } from './url-policy.js';

/** What a metadata or landing request needs from its run and its item. */
export interface CachedGetContext {
  dispatcher: Dispatcher;
  /** the ledger's HTTP cache, and the freshness given to answers that state none (--cache-ttl) */
  cache: { store: CacheStore; ttlS: number };
  headers: Record<string, string>;
  policy: UrlPolicy;
  gate: RequestGate;
  signal: AbortSignal;
}

export interface CachedAnswer {
  status: number;
  body: Buffer;
}

type Handler = Dispatcher.DispatchHandler;
type Controller = Parameters<NonNullable<Handler['onResponseError']>>[0];

/** A controller for an error delivered before any request existed (the gate refused, a URL blocked). */
const NO_REQUEST = { abort() {}, pause() {}, resume() {}, aborted: true, paused: false, reason: null } as unknown as Controller;

/**
 * Innermost interceptor: only a request that goes to the network passes its host's gate (a cached
 * answer takes no rate token), each redirect hop checked against the URL policy first. How it
 * ended goes back to the gate, so metadata and landing hosts have breakers and honour Retry-After.
 */
function gated(ctx: CachedGetContext, role: Role): Dispatcher.DispatcherComposeInterceptor {
  return (dispatch) => (opts, handler) => {
    const url = new URL(opts.path, opts.origin);
    try {
      ctx.policy.check(url);
    } catch (err) {
      handler.onResponseError?.(NO_REQUEST, err as Error);
      return true;
    }
    ctx.gate.enter(gateKey(url.hostname, role), ctx.signal).then(
      (permit) => {
        permit.sent();
        dispatch(opts, settling(handler, permit));
      },
      (err: Error) => handler.onResponseError?.(NO_REQUEST, err),
    );
    return true;
  };
}

/** Passes everything through to `handler`, and settles the permit with how the request ended. */
function settling(handler: Handler, permit: RequestPermit): Handler {
  let status: number | null = null;
  let retryAfter: string | undefined;
  return {
    onRequestStart: (c, context) => handler.onRequestStart?.(c, context),
    onRequestUpgrade: (c, code, headers, socket) => handler.onRequestUpgrade?.(c, code, headers, socket),
    onResponseStart: (c, code, headers, message) => {
      status = code;
      const ra = headers['retry-after'];
      retryAfter = Array.isArray(ra) ? ra[0] : ra;
      return handler.onResponseStart?.(c, code, headers, message);
    },
    onResponseData: (c, chunk) => handler.onResponseData?.(c, chunk),
    onResponseEnd: (c, trailers) => {
      const failed = status !== null && (status >= 500 || status === 408 || status === 429) ? status : null;
      permit.settle(failed !== null ? `http_${failed}` : null, failed !== null ? parseRetryAfter(retryAfter, Date.now()) : null, status);
      return handler.onResponseEnd?.(c, trailers);
    },
    onResponseError: (c, err) => {
      let reason: ItemError['code'] | null = null;
      try {
        reason = toItemError(err).code;
      } catch {
        // not a transport failure (an abort of ours): it says nothing of the host
      }
      permit.settle(reason, null, status);
      return handler.onResponseError?.(c, err);
    },
  };
}

/**
 * A GET through the HTTP cache (undici's cache interceptor, RFC 9111, with the ledger as its
 * store) and the host's gate, following redirects, its body read up to `maxBytes`. A transport
 * failure, an oversized body or a redirect loop is a LookupError with a stable code; a host that
 * asks to wait (Deferred), a lost lease or an interruption passes through unchanged.
 */
export async function cachedGet(ctx: CachedGetContext, url: string, role: Role, maxBytes: number): Promise<CachedAnswer> {
  const { cache, redirect, request } = await loadLookups();
  const dispatcher = ctx.dispatcher.compose(
    gated(ctx, role),
    cache({ store: ctx.cache.store, cacheByDefault: ctx.cache.ttlS, type: 'private', methods: ['GET'] }),
    redirect({ maxRedirections: MAX_REDIRECTS }),
  );
  const target = new URL(url);
  let res: Dispatcher.ResponseData;
  try {
    res = await request.call(dispatcher, { origin: target.origin, path: target.pathname + target.search, method: 'GET', headers: ctx.headers, signal: ctx.signal });
  } catch (err) {
    throw lookupFailure(err);
  }
  const status = res.statusCode;
  if (status >= 300 && status < 400 && res.headers.location) {
    res.body.destroy();
    throw new LookupError('too_many_redirects', `more than ${MAX_REDIRECTS} redirects from ${url}`);
  }
  return { status, body: await readBounded(res.body, maxBytes, url) };
}

async function readBounded(body: Dispatcher.ResponseData['body'], maxBytes: number, url: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body) {
      size += (chunk as Buffer).length;
      if (size > maxBytes) {
        body.destroy();
        throw new LookupError('too_large', `the answer of ${url} is larger than ${maxBytes} bytes`);
      }
      chunks.push(chunk as Buffer);
    }
  } catch (err) {
    throw lookupFailure(err);
  }
  return Buffer.concat(chunks);
}

function lookupFailure(err: unknown): unknown {
  if (err instanceof LookupError) return err;
  // undici's redirect handler refuses a Location that repeats one already followed.
  if (err instanceof Error && /redirect loop|max redirects/i.test(err.message)) return new LookupError('too_many_redirects', err.message, { cause: err });
  if (err instanceof ItemError && err.code !== 'interrupted') return new LookupError(err.code, err.message, { cause: err });
  try {
    const e = toItemError(err);
    return e.code === 'interrupted' ? e : new LookupError(e.code, e.message, { cause: err });
  } catch {
    return err;
  }
}

import { RETRY_LATER_BASE_MS, RETRY_LATER_MAX_MS } from '../config.js';
import { ItemError, type Reason } from '../errors.js';
import { BLOCKED_ADDRESS } from './url-policy.js';

/**
 * The one table that decides what a failure means:
 *   retry - same URL again after backoff (transient)
 *   next  - this URL will not work; try the item's next candidate URL
 *   stop  - the item ends now (no other URL would help)
 */
export type Action = 'retry' | 'next' | 'stop';

const BY_REASON: Partial<Record<Reason, Action>> = {
  timeout: 'retry',
  stalled: 'retry',
  connect_error: 'retry',
  dns_error: 'retry',
  size_mismatch: 'retry',
  not_pdf: 'next',
  too_large: 'next',
  checksum_mismatch: 'next',
  too_many_redirects: 'next',
  tls_error: 'next',
  blocked: 'next',
  quota: 'stop',
  interrupted: 'stop',
  retry_after_too_long: 'stop',
  breaker_open: 'stop',
};

/** Failures that leave the job pending for a later run (and its part in place), not failed. */
const PENDING = new Set<Reason>(['interrupted', 'retry_after_too_long', 'breaker_open']);

export function staysPending(reason: Reason | string | null): boolean {
  return reason !== null && PENDING.has(reason as Reason);
}

/** Whether a failed attempt's part is worth keeping for the next attempt or run. */
export function keepsPart(reason: Reason): boolean {
  return actionFor(reason) === 'retry' || PENDING.has(reason);
}

/**
 * Failures across runs (SPEC §8): when a later run asks again for an item that failed with this
 * reason. `backoff`: transient, after a next-attempt time that grows run after run; `at-once`: the
 * next run (quota, interrupted and the like); `never`: permanent, only with --retry-failed.
 */
export type Later = 'backoff' | 'at-once' | 'never';

const LATER_BY_REASON: Partial<Record<Reason, Later>> = {
  tls_error: 'backoff',
  too_many_redirects: 'backoff',
  not_pdf: 'never',
  too_large: 'never',
  checksum_mismatch: 'never',
  blocked: 'never',
  no_url: 'never',
};

export function laterFor(reason: Reason): Later {
  const known = LATER_BY_REASON[reason];
  if (known) return known;
  if (actionFor(reason) === 'retry') return 'backoff';
  return /^http_4\d\d$/.test(reason) ? 'never' : 'at-once';
}

/** When a later run may ask again for an item failed for the `failedRuns`-th run in a row; null: never. */
export function nextAttemptAt(later: Later, failedRuns: number, now: number): number | null {
  if (later === 'never') return null;
  if (later === 'at-once') return now;
  return now + Math.min(RETRY_LATER_MAX_MS, RETRY_LATER_BASE_MS * 2 ** Math.max(0, failedRuns - 1));
}

export function actionFor(reason: Reason): Action {
  const known = BY_REASON[reason];
  if (known) return known;
  const status = /^http_(\d{3})$/.exec(reason);
  if (status) {
    const code = Number(status[1]);
    return code >= 500 || code === 408 || code === 429 ? 'retry' : 'next';
  }
  return 'stop';
}

/**
 * What a finished request tells the host's breaker. Failures are 5xx, 429, timeouts and
 * connection errors; 4xx other than 408/429 and content problems (not a PDF, too large) are
 * neutral: the host answered. An interrupted request (shutdown, lost lease) tells nothing (null).
 */
export function breakerOutcome(reason: Reason | null): 'success' | 'failure' | 'neutral' | null {
  if (reason === null) return 'success';
  if (reason === 'interrupted') return null;
  const status = /^http_(\d{3})$/.exec(reason);
  if (status) {
    const code = Number(status[1]);
    return code >= 500 || code === 408 || code === 429 ? 'failure' : 'neutral';
  }
  return BREAKER_FAILURES.has(reason) ? 'failure' : 'neutral';
}

const BREAKER_FAILURES = new Set<Reason>(['timeout', 'stalled', 'connect_error', 'dns_error', 'tls_error', 'size_mismatch']);

const CODE_TO_REASON: Record<string, Reason> = {
  UND_ERR_CONNECT_TIMEOUT: 'timeout',
  ETIMEDOUT: 'timeout',
  UND_ERR_HEADERS_TIMEOUT: 'stalled',
  UND_ERR_BODY_TIMEOUT: 'stalled',
  ECONNREFUSED: 'connect_error',
  ECONNRESET: 'connect_error',
  EPIPE: 'connect_error',
  EHOSTUNREACH: 'connect_error',
  ENETUNREACH: 'connect_error',
  EADDRNOTAVAIL: 'connect_error',
  UND_ERR_SOCKET: 'connect_error',
  UND_ERR_CLOSED: 'connect_error',
  ENOTFOUND: 'dns_error',
  EAI_AGAIN: 'dns_error',
  EAI_FAIL: 'dns_error',
  UND_ERR_RES_CONTENT_LENGTH_MISMATCH: 'size_mismatch',
  UND_ERR_REQ_CONTENT_LENGTH_MISMATCH: 'size_mismatch',
  UND_ERR_ABORTED: 'interrupted',
  ABORT_ERR: 'interrupted',
  [BLOCKED_ADDRESS]: 'blocked',
  // Response headers above the client's limit: an answer too large to take.
  UND_ERR_HEADERS_OVERFLOW: 'too_large',
};

const TLS = /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|ERR_OSSL_)/;
/**
 * A response that breaks HTTP/1.1 (parser errors, a socket lost mid-message), or an HTTP/2 stream
 * or session that fails (a stream reset, GOAWAY): like a reset.
 */
const PROTOCOL = /^(HPE_|ERR_HTTP2_|UND_ERR_(?!INVALID_ARG|NOT_SUPPORTED))/;

/** Maps a thrown network error (undici or node) to a reason code; unknown errors are rethrown. */
export function toItemError(err: unknown): ItemError {
  if (err instanceof ItemError) return err;
  for (let e: unknown = err, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth += 1) {
    // undici's parser errors do not always carry a code.
    if ((e as Error).name === 'HTTPParserError') return new ItemError('connect_error', `not a valid HTTP/1.1 response: ${(e as Error).message}`, { cause: err });
    const code = (e as { code?: unknown }).code;
    if (typeof code !== 'string') continue;
    const reason = CODE_TO_REASON[code] ?? (TLS.test(code) ? 'tls_error' : PROTOCOL.test(code) ? 'connect_error' : undefined);
    if (reason) return new ItemError(reason, (e as Error).message ?? code, { cause: err });
  }
  if ((err as Error)?.name === 'AbortError') return new ItemError('interrupted', 'aborted', { cause: err });
  throw err;
}

/** Error names S3-compatible services give a request to slow down. */
const THROTTLED = new Set(['SlowDown', 'Throttling', 'ThrottlingException', 'RequestTimeout', 'RequestTimeTooSkewed', 'InternalError', 'ServiceUnavailable']);

/**
 * A failed call to the object store (S3): transient (5xx, 408, 429, throttling, a reset or a
 * timeout, the same transport codes as downloads) is retried; anything else (access denied, no
 * such bucket, bad credentials) ends the run.
 */
export function storeErrorIsTransient(err: unknown): boolean {
  const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  if (THROTTLED.has((err as Error).name)) return true;
  if (typeof status === 'number') return status >= 500 || status === 408 || status === 429;
  try {
    return actionFor(toItemError(err).code) === 'retry';
  } catch {
    return false;
  }
}

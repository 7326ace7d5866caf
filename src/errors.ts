/** Stable reason codes that appear in records (`reason`) and in the ledger. */
export type Reason =
  | `http_${number}`
  | 'not_pdf'
  | 'too_large'
  | 'size_mismatch'
  | 'checksum_mismatch'
  | 'timeout'
  | 'stalled'
  | 'connect_error'
  | 'dns_error'
  | 'tls_error'
  | 'too_many_redirects'
  | 'breaker_open'
  | 'retry_after_too_long'
  | 'quota'
  | 'blocked'
  | 'no_url'
  | 'invalid_line'
  | 'interrupted';

const DESCRIPTIONS: Record<Exclude<Reason, `http_${number}`>, string> = {
  not_pdf: 'the answer is not a PDF',
  too_large: 'the file is larger than --max-bytes',
  size_mismatch: 'the body ended before its Content-Length',
  checksum_mismatch: 'the SHA-256 differs from the manifest',
  timeout: 'the server did not answer in time',
  stalled: 'the body stopped arriving',
  connect_error: 'the connection failed',
  dns_error: 'the host name did not resolve',
  tls_error: 'the TLS handshake failed',
  too_many_redirects: 'more than 10 redirects',
  breaker_open: "the host's circuit breaker is open; the item stays pending for the next run",
  retry_after_too_long: 'the server asked to wait longer than --retry-after-cap; the item stays pending',
  quota: 'not enough free disk space (--min-free)',
  blocked: 'the URL is not allowed (scheme, --deny-host, --allow-host or --deny-private)',
  no_url: 'the line names no URL to fetch',
  invalid_line: 'the manifest line is not valid',
  interrupted: 'the run stopped before the item finished; the next run continues it',
};

/** A sentence for people about a reason code, for records that carry no more specific message. */
export function describeReason(reason: string): string {
  const http = /^http_(\d{3})$/.exec(reason);
  if (http) return `the server answered HTTP ${http[1]}`;
  return DESCRIPTIONS[reason as keyof typeof DESCRIPTIONS] ?? reason;
}

/** Base error: every error the tool raises on purpose carries a stable code. */
export class DocstokgError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Bad flags, bad config files: nothing was started (exit 2). */
export class UsageError extends DocstokgError {
  constructor(message: string) {
    super('usage', message);
  }
}

/** The run cannot go on: ledger unusable, disk full, output not writable (exit 3). */
export class FatalError extends DocstokgError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('fatal', message, options);
  }
}

/** One download attempt failed for a reason that ends up in the record. */
export class ItemError extends DocstokgError {
  declare readonly code: Reason;
  readonly httpStatus: number | null;
  readonly retryAfterMs: number | null;
  constructor(
    code: Reason,
    message: string,
    facts: { httpStatus?: number | null; retryAfterMs?: number | null; cause?: unknown } = {},
  ) {
    super(code, message, { cause: facts.cause });
    this.httpStatus = facts.httpStatus ?? null;
    this.retryAfterMs = facts.retryAfterMs ?? null;
  }
}

/**
 * Why a resolver's API, a landing page or a robots.txt gave no lead: the item goes on to the next
 * resolver. A transport failure keeps its reason code; `bad_json` and `bad_shape` are answers that
 * are not the JSON the API documents.
 */
export type LookupCode = Reason | 'bad_json' | 'bad_shape';

export class LookupError extends DocstokgError {
  declare readonly code: LookupCode;
  constructor(code: LookupCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

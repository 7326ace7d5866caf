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

import type { Reason } from '../errors.js';

/**
 * The way every request of an item passes its host's politeness (see hosts/gate.ts and pool.ts).
 * `host` is a gate key: the host name for PDFs, `<role> <host>` for metadata and landing pages.
 */
export interface RequestGate {
  /** resolves when a request to the host may go; throws Deferred when not within max_delay_ms */
  enter(host: string, signal: AbortSignal): Promise<RequestPermit>;
}

/** One request let through by its host's gate. */
export interface RequestPermit {
  /** the request left (written to the socket) */
  sent(): void;
  /** how it ended; false when a Retry-After asked for longer than the cap */
  settle(reason: Reason | null, retryAfterMs: number | null, status: number | null): boolean;
}

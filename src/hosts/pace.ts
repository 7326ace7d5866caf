import { TokenBucket } from 'limiter';
import type { RateWindow } from './policy.js';

/**
 * A host's pace: one size-1 `TokenBucket` of limiter per configured window, chained through
 * `parentBucket`, so a request needs a token of every window at once. A size-1 bucket refilling N
 * tokens per window spaces requests window/N apart: N + 1 starts span more than one window, so
 * no window of that length, wherever it is placed, ever holds more than N (a bucket of size N
 * would let 2N through: a full bucket plus its refill). The interval is widened a little for the
 * jitter between sending and arriving.
 */
export class Pace {
  private readonly buckets: TokenBucket[] = [];
  /** ms between two requests at this pace (0 when unpaced): fixed by the windows */
  private readonly spacing: number;

  constructor(windows: readonly RateWindow[]) {
    let parent: TokenBucket | undefined;
    // A request asks the last bucket, which checks (and charges) every ancestor too.
    for (const w of windows) {
      const bucket = new TokenBucket({ bucketSize: 1, tokensPerInterval: w.limit, interval: w.ms + margin(w.ms), parentBucket: parent });
      // limiter starts a bucket empty; a host not asked before may be asked at once.
      bucket.content = 1;
      this.buckets.push(bucket);
      parent = bucket;
    }
    this.spacing = Math.max(0, ...this.buckets.map((b) => b.interval / b.tokensPerInterval));
  }

  private get leaf(): TokenBucket | undefined {
    return this.buckets[this.buckets.length - 1];
  }

  /** 0 when a request may start now; otherwise the ms until one may. Takes nothing. */
  waitMs(): number {
    return this.leaf?.getWaitTime(1) ?? 0;
  }

  /** Takes a token of every window; false when one of them has none. */
  take(): boolean {
    return this.leaf?.tryRemoveTokens(1) ?? true;
  }

  /**
   * The request granted `ms` ago left only now (a connection to set up, a queue in the client):
   * the server sees it that much later, so the next one is pushed back by as much. Charging the
   * buckets the elapsed share keeps every gap, as the server sees it, at least the pace.
   */
  charge(ms: number): void {
    if (ms <= 0) return;
    for (const b of this.buckets) {
      b.drip();
      b.content -= (ms * b.tokensPerInterval) / b.interval;
    }
  }

  /** A token taken for a request that never left goes back (a bucket holds at most one). */
  refund(): void {
    for (const b of this.buckets) {
      b.drip();
      b.content = Math.min(b.bucketSize, b.content + 1);
    }
  }

  /** The time between two requests at this pace, in ms (0 when unpaced). */
  spacingMs(): number {
    return this.spacing;
  }

  /** Every bucket is full: forgetting this host's pace changes nothing. */
  idle(): boolean {
    return this.buckets.every((b) => (b.drip(), b.content >= 1));
  }
}

/**
 * Room for the jitter between a request leaving and its server logging it (either event loop
 * busy for a moment): 2% of the window, at least 20 ms.
 */
function margin(ms: number): number {
  return Math.max(20, ms / 50);
}

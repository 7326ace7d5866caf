import { EventEmitter } from 'node:events';
import CircuitBreaker from 'opossum';
import type { BreakerPolicy } from './policy.js';

export type BreakerState = 'closed' | 'open' | 'half_open';
/** What a finished request tells its host's breaker (see breakerOutcome). */
export type Verdict = 'success' | 'failure' | 'neutral';

/** A request the breaker let through, from the moment it was admitted. */
export interface BreakerCall {
  /** the request went out */
  sent(): void;
  /** how it ended */
  settle(verdict: Verdict): void;
  /** it ended without an answer that says anything of the host (aborted, never sent) */
  drop(): void;
}

class NeutralAnswer extends Error {}
class FailedAnswer extends Error {}

/**
 * Every breaker's rolling window turns on one shared emitter: opossum would otherwise keep two
 * interval timers per breaker (bucket rotation and snapshots), 200,000 of them for 100,000 hosts.
 */
const rotation = new EventEmitter();
rotation.setMaxListeners(0);
let rotating: NodeJS.Timeout | null = null;

function startRotation(): void {
  if (rotating) return;
  rotating = setInterval(() => rotation.emit('rotate'), 1000);
  rotating.unref();
}

/**
 * One host's breaker: an opossum CircuitBreaker through a thin adapter. opossum trips on an error
 * percentage over a rolling window (and at 100% only when it is "greater than" the threshold), so
 * the adapter counts consecutive failures and calls `open()` at `failMax`; neutral answers pass
 * opossum's `errorFilter`. opossum's own timer moves an open breaker to half-open after
 * `resetTimeout`, which the adapter sets, with jitter, before every call that may open it;
 * half-open lets one call through (its `pendingClose`), whose outcome closes or re-opens it.
 * opossum remembers when the breaker was created, not when it opened, so the adapter keeps
 * `openUntil` itself for the ledger, and restores an open breaker with the time it has left.
 */
export class HostBreaker {
  failures = 0;
  openUntil = 0;
  /** a half-open call admitted and not settled: opossum learns of it only once it is sent */
  private probing = false;
  /** made at the host's first failure: a host that never fails costs no breaker */
  private cb: CircuitBreaker<[Promise<void>], void> | null = null;
  /** opossum keeps (and reads) the very options object it was given */
  private options: { resetTimeout: number } = { resetTimeout: 0 };

  constructor(
    private readonly policy: BreakerPolicy,
    restored: { open_until: number; failures: number; breaker_state: BreakerState } | null,
    now: number,
    private readonly onChange: (b: HostBreaker) => void = () => {},
    private readonly random: () => number = Math.random,
    /** consecutive failures counted with other processes: one more, or none; returns the count */
    private readonly count: ((failed: boolean) => number) | null = null,
  ) {
    if (restored === null) return;
    this.failures = restored.failures;
    if (restored.breaker_state === 'closed') return;
    // An open breaker stored by an earlier run: still open for the time it has left, else half-open.
    const left = restored.open_until - now;
    this.openUntil = restored.open_until;
    this.create(left > 0 ? left : policy.resetTimeoutMs, { closed: false, halfOpen: left <= 0 });
  }

  private create(resetTimeout: number, state?: { closed: boolean; halfOpen: boolean }): CircuitBreaker<[Promise<void>], void> {
    startRotation();
    const options = {
      timeout: false as const,
      resetTimeout,
      volumeThreshold: Number.MAX_SAFE_INTEGER,
      errorFilter: (err: Error) => err instanceof NeutralAnswer,
      enableSnapshots: false,
      rotateBucketController: rotation,
      rollingPercentilesEnabled: false,
      ...(state ? { state } : {}),
    };
    this.options = options;
    const cb = new CircuitBreaker((outcome: Promise<void>) => outcome, options);
    cb.on('open', () => {
      this.openUntil = Date.now() + this.options.resetTimeout;
      this.onChange(this);
    });
    cb.on('halfOpen', () => this.onChange(this));
    cb.on('close', () => this.onChange(this));
    this.cb = cb;
    return cb;
  }

  get state(): BreakerState {
    if (!this.cb || this.cb.closed) return 'closed';
    return this.cb.halfOpen ? 'half_open' : 'open';
  }

  /** 0 when a request may go now; else ms to wait (until half-open, or while the probe is out). */
  waitMs(now: number): number {
    if (!this.cb || this.cb.closed) return 0;
    if (this.cb.opened) return Math.max(1, this.openUntil - now);
    return this.cb.pendingClose && !this.probing ? 0 : Math.max(1, Math.floor(this.policy.resetTimeoutMs / 4));
  }

  /** Lets a request through; call in the same tick as a `waitMs` that answered 0. */
  admit(): BreakerCall {
    const probe = this.cb?.halfOpen === true;
    if (probe) this.probing = true;
    let answer: { resolve: () => void; reject: (e: Error) => void } | null = null;
    const fire = (): void => {
      if (answer) return;
      const cb = this.cb;
      if (!cb) {
        answer = { resolve: () => undefined, reject: () => undefined };
        return;
      }
      let resolve!: () => void;
      let reject!: (e: Error) => void;
      const outcome = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      answer = { resolve, reject };
      // Read by opossum when it opens: each opening waits the reset timeout plus up to 20%.
      this.options.resetTimeout = this.jittered();
      cb.fire(outcome).catch(() => undefined);
    };
    return {
      sent: fire,
      settle: (verdict) => {
        // A connection refused never went out, yet it is the host's failure.
        fire();
        if (probe) this.probing = false;
        if (verdict === 'success' || (verdict === 'neutral' && probe)) {
          if (this.failures > 0) this.count?.(false);
          this.failures = 0;
        }
        if (verdict === 'success') answer!.resolve();
        else if (verdict === 'neutral') answer!.reject(new NeutralAnswer());
        else {
          this.failures = this.count ? this.count(true) : this.failures + 1;
          const cb = this.cb ?? this.create(this.jittered());
          if (cb.closed && this.failures >= this.policy.failMax) cb.open();
          answer!.reject(new FailedAnswer());
        }
      },
      drop: () => {
        // An interrupted probe (shutdown, lease lost) decides nothing: the breaker stays as it was.
        if (probe && !answer) this.probing = false;
      },
    };
  }

  /** Closed with no call out: nothing to remember beyond the failures already saved. */
  idle(): boolean {
    return this.state === 'closed' && !this.probing;
  }

  dispose(): void {
    this.cb?.shutdown();
    this.cb = null;
  }

  private jittered(): number {
    return Math.floor(this.policy.resetTimeoutMs * (1 + 0.2 * this.random()));
  }
}

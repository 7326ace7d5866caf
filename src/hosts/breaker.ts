import type { BreakerPolicy } from './policy.js';

export type BreakerState = 'closed' | 'open' | 'half_open';

/**
 * One breaker per host: `failMax` consecutive failures open it; an open breaker sends nothing
 * until `openUntil` (reset timeout plus jitter), then lets exactly one probe through, whose
 * outcome closes it or opens it again. Neutral outcomes (most 4xx) change nothing.
 */
export class Breaker {
  state: BreakerState = 'closed';
  failures = 0;
  openUntil = 0;
  private probing = false;

  constructor(
    private readonly policy: BreakerPolicy,
    private readonly onChange: (b: Breaker) => void = () => {},
    private readonly random: () => number = Math.random,
  ) {}

  /** 0 when a request may go now (claiming the probe slot when half-open), else ms to wait. */
  waitMs(now: number): number {
    if (this.state === 'closed') return 0;
    if (this.state === 'open' && now < this.openUntil) return this.openUntil - now;
    if (this.probing) return Math.max(1, Math.floor(this.policy.resetTimeoutMs / 4));
    return 0;
  }

  /** Called when a request is actually sent. */
  sent(now: number): void {
    if (this.state === 'open' && now >= this.openUntil) {
      this.state = 'half_open';
      this.onChange(this);
    }
    if (this.state === 'half_open') this.probing = true;
  }

  success(): void {
    this.probing = false;
    this.failures = 0;
    if (this.state !== 'closed') {
      this.state = 'closed';
      this.onChange(this);
    }
  }

  failure(now: number): void {
    this.probing = false;
    this.failures += 1;
    if (this.state === 'half_open' || (this.state === 'closed' && this.failures >= this.policy.failMax)) this.open(now);
  }

  /** Opens for the reset timeout plus up to 20% jitter, so many runs do not probe in step. */
  open(now: number, untilAtLeast = 0): void {
    this.state = 'open';
    this.probing = false;
    this.openUntil = Math.max(untilAtLeast, now + Math.floor(this.policy.resetTimeoutMs * (1 + 0.2 * this.random())));
    this.onChange(this);
  }

  /** A probe slot that was reserved but not used. */
  unused(): void {
    this.probing = false;
  }

  /** A neutral answer still ends a probe: the host is up. */
  neutral(): void {
    if (this.state === 'half_open') this.success();
  }
}

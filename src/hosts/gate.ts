import { setTimeout as sleep } from 'node:timers/promises';
import { Events } from '../events.js';
import type { HostRow } from '../ledger/types.js';
import { Breaker } from './breaker.js';
import { SlidingLimiter, type Ticket } from './limiter.js';
import type { BreakerPolicies, RatePolicies, RolePolicy } from './policy.js';

/** `busy`: as many requests in flight as failures the breaker still allows (fail_max bound). */
export type BlockReason = 'rate' | 'breaker' | 'cooldown' | 'busy';

/** A request to this host cannot go within the allowed delay: the item goes back to the queue. */
export class Deferred extends Error {
  constructor(
    readonly host: string,
    readonly why: BlockReason,
    readonly waitMs: number,
  ) {
    super(`${host}: ${why} for ${waitMs} ms`);
  }
}

export type Outcome = 'success' | 'failure' | 'neutral';

interface HostState {
  policy: RolePolicy;
  limiter: SlidingLimiter;
  breaker: Breaker;
  cooldownUntil: number;
  inflight: number;
  lastError: string | null;
  /** slots the pool reserved for items it started, not yet used by a request */
  reserved: Ticket[];
}

/**
 * Every request to every host (each redirect hop included) passes here: the breaker, the
 * Retry-After cool-down and the rate windows. `check` has no side effect; `pass` records a start.
 * State that must outlive the run (open breakers, cool-downs) is written through `persist`.
 */
export class HostGate {
  private readonly hosts = new Map<string, HostState>();

  constructor(
    private readonly rates: RatePolicies,
    private readonly breakers: BreakerPolicies,
    private readonly retryAfterCapMs: number,
    private readonly stored: Map<string, HostRow>,
    private readonly persist: (row: HostRow) => void,
    private readonly now: () => number = Date.now,
    private readonly events: Events = new Events(),
  ) {}

  private state(host: string): HostState {
    let s = this.hosts.get(host);
    if (s) return s;
    const policy = this.rates.resolve(host);
    const breaker = new Breaker(this.breakers.resolve(host), (b) => {
      this.events.emit('breaker', { host, state: b.state, open_until: b.state === 'closed' ? null : new Date(b.openUntil).toISOString(), failures: b.failures });
      this.save(host);
    });
    const row = this.stored.get(host);
    s = { policy, limiter: new SlidingLimiter(policy.windows), breaker, cooldownUntil: row?.cooldown_until ?? 0, inflight: 0, lastError: row?.last_error ?? null, reserved: [] };
    this.hosts.set(host, s);
    if (row && row.open_until > this.now()) {
      breaker.failures = row.failures;
      breaker.state = 'open';
      breaker.openUntil = row.open_until;
    }
    return s;
  }

  private save(host: string): void {
    const s = this.hosts.get(host);
    if (!s) return;
    this.persist({
      host,
      breaker_state: s.breaker.state,
      open_until: s.breaker.state === 'closed' ? 0 : s.breaker.openUntil,
      cooldown_until: s.cooldownUntil,
      failures: s.breaker.failures,
      last_error: s.lastError,
    });
  }

  maxConcurrent(host: string): number {
    return this.state(host).policy.maxConcurrent;
  }

  maxDelayMs(host: string): number {
    return this.state(host).policy.maxDelayMs;
  }

  retryAfterCap(host: string): number {
    return this.breakers.resolve(host).retryAfterCapMs ?? this.retryAfterCapMs;
  }

  /** How long before a request to `host` may start, and what holds it; null when it may go now. */
  /** The pool's view: a host it puts to sleep for its rate window counts as a rate-limit wait. */
  hold(host: string, now: number): { waitMs: number; why: BlockReason } | null {
    const blocked = this.check(host, now);
    if (blocked?.why === 'rate') this.events.emit('rate_limit_wait', { host, wait_ms: blocked.waitMs });
    return blocked;
  }

  check(host: string, now = this.now()): { waitMs: number; why: BlockReason } | null {
    const s = this.state(host);
    const b = s.breaker.waitMs(now);
    if (b > 0) return { waitMs: b, why: 'breaker' };
    // Once a host has failed, never more in flight than failures its breaker still allows, so a
    // dead host receives at most max(fail_max, per-host cap) requests before the breaker opens.
    if (s.breaker.state === 'closed' && s.breaker.failures > 0 && s.inflight + s.breaker.failures >= this.breakers.resolve(host).failMax) {
      return { waitMs: 20, why: 'busy' };
    }
    if (s.cooldownUntil > now) return { waitMs: s.cooldownUntil - now, why: 'cooldown' };
    const r = s.limiter.waitMs(now);
    return r > 0 ? { waitMs: r, why: 'rate' } : null;
  }

  /** The pool reserves a slot when it starts an item, so no other item is started into it. */
  pass(host: string, now = this.now()): void {
    const s = this.state(host);
    s.reserved.push(s.limiter.take(now));
    s.inflight += 1;
  }

  /** The item's first request uses the slot reserved for it, stamped with the real send time. */
  useReservation(host: string, now = this.now()): Ticket | null {
    const s = this.state(host);
    const ticket = s.reserved.shift() ?? null;
    if (ticket) s.limiter.restamp(ticket, now);
    s.breaker.sent(now);
    return ticket;
  }

  private send(host: string, now: number): Ticket {
    const s = this.state(host);
    s.breaker.sent(now);
    s.inflight += 1;
    return s.limiter.take(now);
  }

  /**
   * Stamps a request again when its response starts: by then the server has surely seen it, so
   * every stamp is at or after the request's arrival and a new request admitted a full window
   * later cannot arrive inside the window, whatever the connection set-up or a busy event loop
   * delayed.
   */
  responded(host: string, ticket: Ticket | null, now = this.now()): void {
    if (ticket) this.state(host).limiter.restamp(ticket, now);
  }

  /** A slot reserved with `pass` that no request used after all. */
  release(host: string): void {
    const s = this.state(host);
    s.reserved.shift();
    s.inflight = Math.max(0, s.inflight - 1);
    s.breaker.unused();
  }

  /** Waits up to the host's max_delay_ms for a slot, else throws Deferred (the worker moves on). */
  async enter(host: string, signal: AbortSignal): Promise<Ticket> {
    const deadline = this.now() + this.maxDelayMs(host);
    for (;;) {
      const blocked = this.check(host);
      if (!blocked) return this.send(host, this.now());
      if (this.now() + blocked.waitMs > deadline) throw new Deferred(host, blocked.why, blocked.waitMs);
      if (blocked.why === 'rate') this.events.emit('rate_limit_wait', { host, wait_ms: blocked.waitMs });
      await sleep(blocked.waitMs, undefined, { signal });
    }
  }

  /**
   * Records how a request ended. A Retry-After on 429/503 pauses the whole host; returns false
   * when it asks for longer than the cap (the item then stays pending).
   */
  settle(host: string, outcome: Outcome, error: string | null, retryAfterMs: number | null, now = this.now()): boolean {
    if (outcome === 'success') error = null;
    const s = this.state(host);
    s.inflight = Math.max(0, s.inflight - 1);
    if (error) s.lastError = error;
    let withinCap = true;
    if (retryAfterMs !== null && (error === 'http_429' || error === 'http_503')) {
      s.cooldownUntil = Math.max(s.cooldownUntil, now + retryAfterMs);
      withinCap = retryAfterMs <= this.retryAfterCap(host);
    }
    if (outcome === 'success') s.breaker.success();
    else if (outcome === 'failure') s.breaker.failure(now);
    else s.breaker.neutral();
    if (error || retryAfterMs !== null) this.save(host);
    return withinCap;
  }

  /** Why a blocked host's remaining tasks end this run, or null to keep waiting for it. */
  abandonReason(host: string, blocked: { waitMs: number; why: string }): string | null {
    if (blocked.why === 'breaker') return 'breaker_open';
    if (blocked.why === 'cooldown' && blocked.waitMs > this.retryAfterCap(host)) return 'retry_after_too_long';
    return null;
  }

  /** Per-host view for `status` and the end of a run. */
  snapshot(): HostRow[] {
    return [...this.hosts.keys()].map((host) => {
      const s = this.hosts.get(host)!;
      return { host, breaker_state: s.breaker.state, open_until: s.breaker.openUntil, cooldown_until: s.cooldownUntil, failures: s.breaker.failures, last_error: s.lastError };
    });
  }
}

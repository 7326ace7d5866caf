import { HOST_ROW_REFRESH_MS, LATE_SEND_MS } from '../config.js';
import { Events } from '../events.js';
import type { HostRow } from '../ledger/types.js';
import { HostBreaker, type BreakerCall, type Verdict } from './breaker.js';
import { Pace } from './pace.js';
import type { BreakerPolicies, RatePolicies, RolePolicy } from './policy.js';

/** `busy`: as many requests in flight as failures the breaker still allows (fail_max bound). */
export type BlockReason = 'rate' | 'breaker' | 'cooldown' | 'busy';

export interface Blocked {
  waitMs: number;
  why: BlockReason;
}

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

/** One request the gate let through, from its grant to its end. */
export interface Permit {
  readonly host: string;
  /** the request went out: the host's pace is charged for any delay since the grant */
  sent(): void;
  /**
   * How it ended (null verdict: it says nothing of the host, e.g. aborted). A Retry-After on
   * 429/503 pauses the whole host; returns false when it asks for longer than the cap.
   */
  settle(verdict: Verdict | null, error: string | null, retryAfterMs: number | null): boolean;
}

interface HostState {
  policy: RolePolicy;
  pace: Pace;
  breaker: HostBreaker;
  cooldownUntil: number;
  inflight: number;
  lastError: string | null;
  /** when the host's row was last read, and when this process last wrote it */
  readAt: number;
  savedAt: number;
  /** until when another process's breaker holds the host shut (0: it does not) */
  shutUntil: number;
  /** when the host is next free by the shared schedule, as last read (0: not known to be taken) */
  sharedNext: number;
  /** until when the host counts as asked by other processes too (a take of it lately failed) */
  contendedUntil: number;
}

/**
 * What processes sharing a ledger share of a host: a paced host's next free moment (each
 * process's own limiter paces its requests; the shared one spaces them from every other
 * process's), and its count of consecutive failures, which opens its breaker.
 */
export interface SharedHosts {
  /**
   * Takes the host now if it is free by the shared schedule (the next free moment becomes now +
   * spacing, durably, before this returns): null. Else when it is next free.
   */
  take(host: string, spacingMs: number, now: number): number | null;
  /** the host is not free before `at` (a request left later than it was let through) */
  notBefore(host: string, at: number): void;
  /** one failure more (`failed`) or none: the count across every process */
  countFailure(host: string, failed: boolean, now: number): number;
}

/** How much of a late send's lag is kept at the next send (see HostGate.lagMs). */
const LAG_DECAY = 0.95;
/** A host found taken counts as shared with other processes for this many spacings. */
const CONTENDED_SPACINGS = 20;

/** Per-host state beyond this many hosts is swept of idle entries (see `sweep`). */
const KEEP_HOSTS = 4096;

/**
 * Every request to every host (each retry, fallback and redirect hop) passes here: the breaker,
 * the Retry-After cool-down and the rate windows. `check` takes nothing; `admit`, in the same
 * tick, takes the host's token and lets the request through its breaker. State that must outlive
 * the run (open breakers, cool-downs) is written through `persist`; state of idle hosts is
 * dropped, so memory stays flat over a manifest of 100,000 hosts.
 */
export class HostGate {
  private readonly hosts = new Map<string, HostState>();
  /** a moving average of how long a request holds its network slot, all hosts together */
  private slotMs = 0;
  /**
   * How late this process's requests have lately left after being let through (a decaying
   * maximum, ms). A host other processes also ask is taken that much longer (at most one
   * spacing): a request a busy event loop sends late still leaves a spacing before theirs.
   */
  private lagMs = 0;
  /** the map's size that triggers the next sweep: doubling keeps sweeping linear overall */
  private sweepAt = KEEP_HOSTS;
  private readonly startedAt: number;

  constructor(
    private readonly rates: RatePolicies,
    private readonly breakers: BreakerPolicies,
    private readonly retryAfterCapMs: number,
    /** the host's row in the ledger: state of a host forgotten (or from an earlier run) comes back from it */
    private readonly stored: (host: string) => (HostRow & { updated_at?: number }) | undefined,
    private readonly persist: (row: HostRow, now: number) => void,
    private readonly now: () => number = Date.now,
    private readonly events: Events = new Events(),
    private readonly shared: SharedHosts | null = null,
  ) {
    this.startedAt = now();
  }

  private state(host: string): HostState {
    let s = this.hosts.get(host);
    if (s) return s;
    if (this.hosts.size >= this.sweepAt) {
      this.sweep();
      this.sweepAt = Math.max(KEEP_HOSTS, 2 * this.hosts.size);
    }
    const policy = this.rates.resolve(host);
    let row = this.stored(host) ?? null;
    // Failures of a closed breaker count within a run: an earlier run's are not carried over.
    if (row && row.breaker_state === 'closed' && (row.updated_at ?? 0) < this.startedAt) {
      if (row.failures > 0) this.shared?.countFailure(host, false, this.now());
      row = { ...row, failures: 0 };
    }
    const shared = this.shared;
    const breaker = new HostBreaker(this.breakers.resolve(host), row, this.now(), (b) => {
      this.events.emit('breaker', { host, state: b.state, open_until: b.state === 'closed' ? null : new Date(b.openUntil).toISOString(), failures: b.failures });
      this.save(host);
    }, undefined, shared && ((failed) => shared.countFailure(host, failed, this.now())));
    const now = this.now();
    s = {
      policy, pace: new Pace(policy.windows), breaker, cooldownUntil: row?.cooldown_until ?? 0, inflight: 0, lastError: row?.last_error ?? null,
      readAt: now, savedAt: 0, shutUntil: 0, sharedNext: 0, contendedUntil: 0,
    };
    this.hosts.set(host, s);
    return s;
  }

  /**
   * Forgets hosts with nothing to remember but what the ledger holds: no request out, breaker
   * closed, no pause, every rate bucket full again. A host's failures and last error were saved
   * when they happened and come back with its row if it is asked again.
   */
  private sweep(): void {
    const now = this.now();
    for (const [host, s] of this.hosts) {
      if (s.inflight === 0 && s.cooldownUntil <= now && s.breaker.idle() && s.pace.idle()) {
        s.breaker.dispose();
        this.hosts.delete(host);
      }
    }
  }

  private save(host: string): void {
    const s = this.hosts.get(host);
    if (!s) return;
    s.savedAt = this.now();
    const row: HostRow = {
      host,
      breaker_state: s.breaker.state,
      open_until: s.breaker.state === 'closed' ? 0 : s.breaker.openUntil,
      cooldown_until: s.cooldownUntil,
      failures: s.breaker.failures,
      last_error: s.lastError,
    };
    this.persist(row, s.savedAt);
  }

  maxConcurrent(host: string): number {
    return this.rates.resolve(host).maxConcurrent;
  }

  maxDelayMs(host: string): number {
    return this.rates.resolve(host).maxDelayMs;
  }

  retryAfterCap(host: string): number {
    return this.breakers.resolve(host).retryAfterCapMs ?? this.retryAfterCapMs;
  }

  /**
   * How long before a request to `host` may start, and what holds it; null when it may go now.
   * `holdsNetwork`: the caller holds a network slot and sends at once if let through. Only then
   * is a paced host taken from the schedule shared with other processes: taken earlier, a wait
   * for a network slot would send it late, up to a spacing too close to another process's.
   */
  check(host: string, now = this.now(), holdsNetwork = false): Blocked | null {
    const s = this.state(host);
    if (now - s.readAt >= HOST_ROW_REFRESH_MS) this.reread(host, s, now);
    const b = Math.max(s.breaker.waitMs(now), s.shutUntil - now);
    if (b > 0) return { waitMs: b, why: 'breaker' };
    // Once a host has failed, never more in flight than failures its breaker still allows, so a
    // dead host receives at most max(fail_max, per-host cap) requests before the breaker opens.
    if (s.breaker.state === 'closed' && s.breaker.failures > 0 && s.inflight + s.breaker.failures >= this.breakers.resolve(host).failMax) {
      return { waitMs: 20, why: 'busy' };
    }
    if (s.cooldownUntil > now) return { waitMs: s.cooldownUntil - now, why: 'cooldown' };
    let r = s.pace.waitMs();
    // This process's pace allows a request: with others on the ledger, the host must also be free
    // by theirs.
    if (r === 0 && this.shared && s.pace.spacingMs() > 0) {
      if (holdsNetwork) {
        const spacing = s.pace.spacingMs();
        // Alone on a host, a late send delays only this process's next request: no margin.
        const margin = now < s.contendedUntil ? Math.min(this.lagMs, spacing) : 0;
        s.sharedNext = this.shared.take(host, spacing + margin, now) ?? 0;
        if (s.sharedNext > 0) s.contendedUntil = now + CONTENDED_SPACINGS * spacing;
      }
      r = Math.max(0, s.sharedNext - now);
    }
    if (r > 0) {
      this.events.emit('rate_limit_wait', { host, wait_ms: r });
      return { waitMs: r, why: 'rate' };
    }
    return null;
  }

  /**
   * Takes up what another process sharing the ledger stored of the host since this one last
   * wrote it: a Retry-After pause, a breaker it opened.
   */
  private reread(host: string, s: HostState, now: number): void {
    s.readAt = now;
    const row = this.stored(host);
    if (!row || (row.updated_at ?? 0) <= s.savedAt) return;
    s.cooldownUntil = Math.max(s.cooldownUntil, row.cooldown_until);
    s.shutUntil = row.breaker_state === 'closed' ? 0 : row.open_until;
    if (row.breaker_state === 'closed' && s.breaker.state === 'closed') s.breaker.failures = row.failures;
  }

  /** ms between two requests to `host` at its pace (0 when unpaced). */
  spacingMs(host: string): number {
    return this.state(host).pace.spacingMs();
  }

  /** Requests to `host` let through and not yet ended. */
  inflight(host: string): number {
    return this.hosts.get(host)?.inflight ?? 0;
  }

  /** How long requests have lately held a network slot (a moving average; 0 before any). */
  get requestMs(): number {
    return this.slotMs;
  }

  /** Lets one request through; only in the same tick as a `check` that answered null. */
  admit(host: string): Permit {
    const s = this.state(host);
    const granted = performance.now();
    s.pace.take();
    s.inflight += 1;
    const call: BreakerCall = s.breaker.admit();
    let open = true;
    let wentOut = false;
    return {
      host,
      sent: () => {
        wentOut = true;
        const late = performance.now() - granted;
        this.lagMs = Math.max(late, this.lagMs * LAG_DECAY);
        s.pace.charge(late);
        if (late >= LATE_SEND_MS && this.shared && s.pace.spacingMs() > 0) this.shared.notBefore(host, this.now() + s.pace.spacingMs());
        call.sent();
      },
      settle: (verdict, error, retryAfterMs) => {
        if (!open) return true;
        open = false;
        s.inflight = Math.max(0, s.inflight - 1);
        const took = performance.now() - granted;
        this.slotMs = this.slotMs === 0 ? took : 0.9 * this.slotMs + 0.1 * took;
        if (verdict === null) {
          call.drop();
          // Never sent (its lease was lost, the run stopped): the token is this host's next
          // request's (the shared schedule moved on: another process may use it meanwhile).
          if (!wentOut) s.pace.refund();
          return true;
        }
        return this.settled(host, s, call, verdict, error, retryAfterMs);
      },
    };
  }

  private settled(host: string, s: HostState, call: BreakerCall, verdict: Verdict, error: string | null, retryAfterMs: number | null): boolean {
    const now = this.now();
    if (verdict === 'success') error = null;
    if (error) s.lastError = error;
    let withinCap = true;
    if (retryAfterMs !== null && (error === 'http_429' || error === 'http_503')) {
      s.cooldownUntil = Math.max(s.cooldownUntil, now + retryAfterMs);
      withinCap = retryAfterMs <= this.retryAfterCap(host);
    }
    const failed = s.breaker.failures;
    call.settle(verdict);
    // A success clears a count the ledger holds, which would otherwise come back with the row.
    if (error || retryAfterMs !== null || (failed > 0 && s.breaker.failures === 0)) this.save(host);
    return withinCap;
  }

  /** Why a blocked host's remaining tasks end this run, or null to keep waiting for it. */
  abandonReason(host: string, blocked: Blocked): string | null {
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

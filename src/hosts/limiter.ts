import type { RateWindow } from './policy.js';

/**
 * Sliding-window log: remembers the last `limit` start times of each window. A request may start
 * when the oldest of them left the window, so no window of that length, wherever it is placed,
 * ever holds more than `limit` requests. (A token bucket of size N lets up to 2N through in some
 * one-second spans: a full bucket plus its refill.)
 */
/** Positions of one start in each window's log, so it can be moved to the real send time. */
export type Ticket = number[];

export class SlidingLimiter {
  private readonly logs: { w: RateWindow; times: number[]; next: number }[];

  /** `marginMs` widens every window a little, for the jitter between sending and arriving. */
  constructor(windows: readonly RateWindow[], marginMs = (w: RateWindow) => Math.max(10, w.ms / 100)) {
    this.logs = windows.map((w) => ({ w: { limit: w.limit, ms: w.ms + marginMs(w) }, times: new Array<number>(w.limit).fill(-Infinity), next: 0 }));
  }

  /** 0 when a request may start now; otherwise the ms until one may. Reserves nothing. */
  waitMs(now: number): number {
    let wait = 0;
    for (const log of this.logs) wait = Math.max(wait, log.times[log.next]! + log.w.ms - now);
    return Math.max(0, Math.ceil(wait));
  }

  /** Records a start in every window; call only when waitMs(now) is 0. */
  take(now: number): Ticket {
    return this.logs.map((log) => {
      const at = log.next;
      log.times[at] = now;
      log.next = (log.next + 1) % log.w.limit;
      return at;
    });
  }

  /**
   * Moves a start reserved earlier to when the request really went. Stamps only ever move later,
   * which can only make later admissions stricter, never looser.
   */
  restamp(ticket: Ticket, now: number): void {
    ticket.forEach((at, i) => {
      const log = this.logs[i]!;
      if (log.times[at]! < now) log.times[at] = now;
    });
  }
}

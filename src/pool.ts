import { PLAN_WINDOW } from './config.js';

export interface Task {
  host: string;
  /**
   * `release` hands the task's slot back before the task ends: called once nothing more of it
   * goes to the network, so another transfer can start while it finishes locally.
   */
  run: (release: () => void) => Promise<void>;
  /** the run ends with this task still blocked (open breaker, cool-down beyond the cap) */
  abandon: (reason: string) => void;
}

/** What the pool asks before starting a task for a host (see HostGate). */
export interface Gatekeeper {
  /** null when a task for the host may start now, else how long to wait and why */
  hold(host: string, now: number): { waitMs: number; why: string } | null;
  pass(host: string, now: number): void;
  maxConcurrent(host: string): number;
  /** the reason to give up on a blocked host's tasks when nothing else is left to do, or null to wait */
  abandonReason(host: string, blocked: { waitMs: number; why: string }): string | null;
}

const OPEN: Gatekeeper = { hold: () => null, pass: () => {}, maxConcurrent: () => Number.MAX_SAFE_INTEGER, abandonReason: () => null };

/**
 * Bounded worker pool with per-host queues. A free slot goes to the next host (round robin) that
 * has work, is under its cap and whose gate is open; a host whose gate is shut (rate window,
 * breaker, cool-down) sleeps until it may go, so no worker ever waits on one host while another
 * has work. `add` waits while the window of queued tasks is full, which keeps memory flat.
 */
export class HostPool {
  private readonly queues = new Map<string, Task[]>();
  private readonly activeByHost = new Map<string, number>();
  /** hosts with queued tasks, a free slot and no known reason to wait, in round-robin order */
  private readonly ready = new Set<string>();
  private readonly sleeping = new Map<string, { until: number; why: string; waitMs: number }>();
  private timer: NodeJS.Timeout | null = null;
  /** tasks holding a slot */
  private active = 0;
  /** tasks that gave their slot back and still run; none starts while `concurrency` of them do */
  private finishing = 0;
  private queued = 0;
  private stopped = false;
  private failure: unknown = null;
  private waiters: (() => void)[] = [];
  /** called once, with the first error a task throws (the run is ending: abort what is in flight) */
  onFailure: ((err: unknown) => void) | null = null;

  constructor(
    private readonly concurrency: number,
    private readonly perHost: number,
    private readonly gate: Gatekeeper = OPEN,
    private readonly now: () => number = Date.now,
    private readonly window = Math.max(PLAN_WINDOW, concurrency * 4),
  ) {}

  async add(task: Task): Promise<void> {
    while (this.queued >= this.window && !this.stopped) {
      this.abandonIfStuck();
      if (this.queued >= this.window) await this.change();
    }
    this.enqueue(task);
  }

  /** Puts a task back (its host said wait); it runs again when the host may be asked. */
  requeue(task: Task): void {
    this.enqueue(task);
  }

  private enqueue(task: Task): void {
    if (this.stopped) return;
    const q = this.queues.get(task.host);
    if (q) q.push(task);
    else this.queues.set(task.host, [task]);
    this.queued += 1;
    this.markReady(task.host);
    this.pump();
  }

  /** Resolves when every task has run or been abandoned; rejects if a task threw (a bug). */
  async drain(): Promise<void> {
    while (this.active + this.finishing > 0 || (this.queued > 0 && !this.stopped)) {
      this.abandonIfStuck();
      if (this.active + this.finishing > 0 || this.queued > 0) await this.change();
    }
    if (this.timer) clearTimeout(this.timer);
    if (this.failure) throw this.failure;
  }

  /** Stop starting tasks (graceful shutdown); running ones finish on their own. */
  stop(): void {
    this.stopped = true;
    this.queues.clear();
    this.ready.clear();
    this.sleeping.clear();
    this.queued = 0;
    if (this.timer) clearTimeout(this.timer);
    this.notify();
  }

  private cap(host: string): number {
    return Math.min(this.perHost, this.gate.maxConcurrent(host));
  }

  private markReady(host: string): void {
    if (this.queues.has(host) && !this.sleeping.has(host) && (this.activeByHost.get(host) ?? 0) < this.cap(host)) this.ready.add(host);
  }

  private change(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private notify(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const resolve of w) resolve();
  }

  private pump(): void {
    while (!this.stopped && this.active < this.concurrency && this.finishing < this.concurrency && this.ready.size > 0) {
      const host = this.ready.values().next().value as string;
      this.ready.delete(host);
      const now = this.now();
      const blocked = this.gate.hold(host, now);
      if (blocked) {
        this.sleep(host, now, blocked);
        continue;
      }
      this.gate.pass(host, now);
      const q = this.queues.get(host)!;
      const task = q.shift()!;
      if (q.length === 0) this.queues.delete(host);
      this.queued -= 1;
      this.activeByHost.set(host, (this.activeByHost.get(host) ?? 0) + 1);
      this.active += 1;
      this.markReady(host);
      void this.start(task);
    }
    this.notify();
  }

  private sleep(host: string, now: number, blocked: { waitMs: number; why: string }): void {
    this.sleeping.set(host, { until: now + blocked.waitMs, why: blocked.why, waitMs: blocked.waitMs });
    this.schedule();
  }

  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.sleeping.size === 0) return;
    const next = Math.min(...[...this.sleeping.values()].map((s) => s.until));
    this.timer = setTimeout(() => this.wake(), Math.max(1, next - this.now()));
  }

  private wake(): void {
    this.timer = null;
    const now = this.now();
    for (const [host, s] of this.sleeping) {
      if (s.until <= now) {
        this.sleeping.delete(host);
        this.markReady(host);
      }
    }
    this.schedule();
    this.pump();
  }

  /** Nothing running and nothing ready: hosts shut for good this run give their tasks up. */
  private abandonIfStuck(): void {
    if (this.active + this.finishing > 0 || this.ready.size > 0) return;
    for (const [host, s] of [...this.sleeping]) {
      const reason = this.gate.abandonReason(host, { waitMs: s.until - this.now(), why: s.why });
      if (!reason) continue;
      this.sleeping.delete(host);
      const q = this.queues.get(host) ?? [];
      this.queues.delete(host);
      this.queued -= q.length;
      for (const t of q) t.abandon(reason);
    }
    this.schedule();
  }

  private async start(task: Task): Promise<void> {
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      this.finishing += 1;
      this.free(task.host);
    };
    try {
      await task.run(release);
    } catch (err) {
      if (this.failure === null) {
        this.failure = err;
        this.onFailure?.(err);
      }
      this.stop();
    }
    if (released) {
      this.finishing -= 1;
      this.pump();
    } else this.free(task.host);
  }

  private free(host: string): void {
    this.active -= 1;
    const n = (this.activeByHost.get(host) ?? 1) - 1;
    if (n === 0) this.activeByHost.delete(host);
    else this.activeByHost.set(host, n);
    this.markReady(host);
    this.pump();
  }
}

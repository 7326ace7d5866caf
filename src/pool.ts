import { PLAN_WINDOW } from './config.js';

export interface Task {
  host: string;
  run: () => Promise<void>;
}

/**
 * Bounded worker pool with a per-host cap. Queued tasks wait per host; a free slot goes to the
 * next host (round robin) that has work and is under its cap, so one slow or crowded host never
 * holds slots that another host's items could use. `add` waits while the window of queued tasks
 * is full, which is what keeps memory flat on a manifest of any length.
 */
export class HostPool {
  private readonly queues = new Map<string, Task[]>();
  private readonly activeByHost = new Map<string, number>();
  /** hosts with queued tasks and a free per-host slot, in round-robin order */
  private readonly ready = new Set<string>();
  private active = 0;
  private queued = 0;
  private stopped = false;
  private failure: unknown = null;
  private waiters: (() => void)[] = [];

  constructor(
    private readonly concurrency: number,
    private readonly perHost: number,
    private readonly window = Math.max(PLAN_WINDOW, concurrency * 4),
  ) {}

  async add(task: Task): Promise<void> {
    while (this.queued >= this.window && !this.stopped) await this.change();
    if (this.stopped) return;
    const q = this.queues.get(task.host);
    if (q) q.push(task);
    else this.queues.set(task.host, [task]);
    this.queued += 1;
    if ((this.activeByHost.get(task.host) ?? 0) < this.perHost) this.ready.add(task.host);
    this.pump();
  }

  /** Resolves when every queued and running task has finished; rejects if a task threw (a bug). */
  async drain(): Promise<void> {
    while (this.active > 0 || (this.queued > 0 && !this.stopped)) await this.change();
    if (this.failure) throw this.failure;
  }

  /** Stop starting tasks (graceful shutdown); running ones finish on their own. */
  stop(): void {
    this.stopped = true;
    this.queues.clear();
    this.ready.clear();
    this.queued = 0;
    this.notify();
  }

  get running(): number {
    return this.active;
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
    while (!this.stopped && this.active < this.concurrency && this.ready.size > 0) {
      const host = this.ready.values().next().value as string;
      this.ready.delete(host);
      const q = this.queues.get(host)!;
      const task = q.shift()!;
      if (q.length === 0) this.queues.delete(host);
      this.queued -= 1;
      const n = (this.activeByHost.get(host) ?? 0) + 1;
      this.activeByHost.set(host, n);
      this.active += 1;
      if (q.length > 0 && n < this.perHost) this.ready.add(host);
      void this.start(task);
    }
  }

  private async start(task: Task): Promise<void> {
    try {
      await task.run();
    } catch (err) {
      this.failure ??= err;
      this.stop();
    }
    this.active -= 1;
    const n = (this.activeByHost.get(task.host) ?? 1) - 1;
    if (n === 0) this.activeByHost.delete(task.host);
    else this.activeByHost.set(task.host, n);
    if (this.queues.has(task.host)) this.ready.add(task.host);
    this.pump();
    this.notify();
  }
}

import pLimit, { type LimitFunction } from 'p-limit';

/** Gives a held slot back; calling it again does nothing. */
export type Free = () => void;

/** Holds one slot of a p-limit until the returned function is called. */
export function holdSlot(limit: LimitFunction): Promise<Free> {
  return new Promise((resolve, reject) => {
    limit(
      () =>
        new Promise<void>((free) => {
          let held = true;
          resolve(() => {
            if (held) free();
            held = false;
          });
        }),
    ).catch(reject);
  });
}

/**
 * One p-limit per host, made when the host is first asked for and forgotten once it has nothing
 * running or queued, so 100,000 hosts cost no more than the few in use. A host's queue is its
 * backlog; `clear` drops it (its waiters reject with p-limit's AbortError).
 */
export class HostSlots {
  private readonly limits = new Map<string, LimitFunction>();
  private sweepAt = 1024;

  private limit(host: string, cap: number): LimitFunction {
    let l = this.limits.get(host);
    if (l) return l;
    if (this.limits.size >= this.sweepAt) {
      for (const [h, x] of this.limits) if (x.activeCount === 0 && x.pendingCount === 0) this.limits.delete(h);
      this.sweepAt = Math.max(1024, 2 * this.limits.size);
    }
    l = pLimit({ concurrency: cap, rejectOnClear: true });
    this.limits.set(host, l);
    return l;
  }

  /** Waits for a slot of `host` (at most `cap` held at once), in the order asked. */
  hold(host: string, cap: number): Promise<Free> {
    return holdSlot(this.limit(host, cap));
  }

  /** A slot of `host` now, or null when all are taken or others queue for one. */
  tryHold(host: string, cap: number): Free | null {
    const l = this.limit(host, cap);
    if (l.activeCount >= l.concurrency || l.pendingCount > 0) return null;
    // p-limit counts the slot as taken at once; its holder learns of it a few microtasks later.
    let free: Free | null = null;
    let wanted = false;
    void holdSlot(l).then((f) => {
      free = f;
      if (wanted) f();
    });
    return () => {
      wanted = true;
      free?.();
    };
  }

  /** Tasks of `host` holding or waiting for a slot. */
  remaining(host: string): number {
    const l = this.limits.get(host);
    return l ? l.activeCount + l.pendingCount : 0;
  }

  /** Hosts with at least `min` tasks holding or waiting for a slot, and how many. */
  *withWork(min: number): IterableIterator<[string, number]> {
    for (const [host, l] of this.limits) {
      const n = l.activeCount + l.pendingCount;
      if (n >= min) yield [host, n];
    }
  }

  /** Drops the tasks waiting for a slot of `host`. */
  clear(host: string): void {
    this.limits.get(host)?.clearQueue();
  }
}

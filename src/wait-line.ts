/** A task waiting for a network slot. */
export interface Waiter {
  home: string;
  grant: (free: () => void) => void;
  cancel: (err: Error) => void;
  cancelled: boolean;
}

interface Entry {
  host: string;
  /** the host's items left when this entry was keyed */
  key: number;
  seq: number;
}

/**
 * Waiting tasks: first in, first out within a host, and hosts ordered by how much they have left
 * (most first), then by when they began waiting. A binary heap of hosts whose keys are refreshed
 * lazily, when a host reaches the top: a pick costs O(log hosts) rather than a scan of every
 * waiting task.
 */
export class WaitLine {
  private heap: Entry[] = [];
  private readonly queues = new Map<string, Waiter[]>();
  private seq = 0;

  constructor(private readonly left: (host: string) => number) {}

  push(w: Waiter): void {
    const q = this.queues.get(w.home);
    if (q) return void q.push(w);
    this.queues.set(w.home, [w]);
    this.insert({ host: w.home, key: this.left(w.home), seq: this.seq++ });
  }

  /** The best live waiter and its host's count, left in line; null when none waits. */
  peek(): { w: Waiter; left: number } | null {
    for (;;) {
      const top = this.heap[0];
      if (!top) return null;
      const q = this.queues.get(top.host)!;
      while (q.length > 0 && q[0]!.cancelled) q.shift();
      if (q.length === 0) {
        this.queues.delete(top.host);
        this.removeTop();
        continue;
      }
      const now = this.left(top.host);
      if (now === top.key) return { w: q[0]!, left: now };
      this.removeTop();
      this.insert({ ...top, key: now });
    }
  }

  /** Takes the best live waiter off the line. */
  take(): Waiter | null {
    const top = this.peek();
    if (!top) return null;
    this.queues.get(top.w.home)!.shift();
    return top.w;
  }

  /** Every waiter, for cancelling them all. */
  drain(): Waiter[] {
    const all = [...this.queues.values()].flat();
    this.queues.clear();
    this.heap = [];
    return all;
  }

  private before(a: Entry, b: Entry): boolean {
    return a.key > b.key || (a.key === b.key && a.seq < b.seq);
  }

  private insert(e: Entry): void {
    const h = this.heap;
    h.push(e);
    for (let i = h.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (!this.before(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  private removeTop(): void {
    const h = this.heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    h[0] = last;
    for (let i = 0; ; ) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && this.before(h[l]!, h[m]!)) m = l;
      if (r < h.length && this.before(h[r]!, h[m]!)) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
}

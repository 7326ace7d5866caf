/** A task waiting for a network slot. */
export interface Waiter {
  home: string;
  grant: (free: () => void) => void;
  cancel: (err: Error) => void;
  cancelled: boolean;
}

interface Entry {
  w: Waiter;
  /** the home host's items left when this entry was made */
  key: number;
  seq: number;
}

/**
 * Waiting tasks ordered by how much their host has left (most first), then by when they asked.
 * A binary heap whose keys are refreshed lazily: a host's count only drops while its tasks wait
 * (finished items), so an entry found at the top with a stale, higher key is pushed back with
 * its current one, and a pick costs O(log n) rather than a scan of every waiting task.
 */
export class WaitLine {
  private heap: Entry[] = [];
  private seq = 0;

  constructor(private readonly left: (host: string) => number) {}

  get size(): number {
    return this.heap.length;
  }

  push(w: Waiter): void {
    this.insert({ w, key: this.left(w.home), seq: this.seq++ });
  }

  /** The best live waiter and its host's count, left in line; null when none waits. */
  peek(): { w: Waiter; left: number } | null {
    for (;;) {
      const top = this.heap[0];
      if (!top) return null;
      if (top.w.cancelled) {
        this.removeTop();
        continue;
      }
      const now = this.left(top.w.home);
      if (now >= top.key) return { w: top.w, left: now };
      this.removeTop();
      this.insert({ ...top, key: now });
    }
  }

  /** Takes the best live waiter off the line. */
  take(): Waiter | null {
    const top = this.peek();
    if (!top) return null;
    this.removeTop();
    return top.w;
  }

  /** Every waiter, for cancelling them all. */
  drain(): Waiter[] {
    const all = this.heap.map((e) => e.w);
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

/** The most requests that fell into any window of `ms`, wherever it is placed. */
export function maxInWindow(times: number[], ms: number): number {
  const t = [...times].sort((a, b) => a - b);
  let best = 0;
  for (let i = 0, j = 0; i < t.length; i += 1) {
    while (t[i]! - t[j]! >= ms) j += 1;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

/** The most intervals [start, end] open at one moment. */
export function maxOverlap(intervals: readonly [number, number][]): number {
  const edges = intervals.flatMap(([a, b]): [number, number][] => [[a, 1], [b, -1]]).sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let open = 0;
  let best = 0;
  for (const [, d] of edges) best = Math.max(best, (open += d));
  return best;
}

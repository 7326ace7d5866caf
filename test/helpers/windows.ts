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

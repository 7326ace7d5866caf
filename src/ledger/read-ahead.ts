const READ_AHEAD_MAX = 1024;

/**
 * Rows read ahead in planning order, for a re-run of a manifest, which asks for its jobs in the
 * order they were planned: after a look-up by key, the rows planned right after it are read in one
 * range read, and each next line is checked against the next row read. The size grows while the
 * rows are used and drops when the manifest follows another order (0: off, tried again now and
 * then in case the manifest reaches an ordered stretch).
 */
export class ReadAhead<V> {
  private keys: string[] = [];
  private values: V[] = [];
  private at = 0;
  private size = 16;
  private hits = 0;
  private misses = 0;

  /** The row read ahead for `key` when it is the next one expected. */
  next(key: string): V | undefined {
    const at = this.at;
    if (at >= this.keys.length || this.keys[at] !== key) return undefined;
    this.at = at + 1;
    this.hits += 1;
    return this.values[at];
  }

  /**
   * After a look-up by key that found a row: how many rows to read ahead of it now (0: none). The
   * rows read go to `fill`.
   */
  missed(): number {
    this.misses += 1;
    const used = this.hits;
    this.hits = 0;
    if (this.size > 0 && used * 2 >= this.size) this.size = Math.min(READ_AHEAD_MAX, this.size * 2);
    else if (this.size > 0) this.size = Math.floor(this.size / 4);
    else if (this.misses % 1024 === 0) this.size = 16;
    this.keys = [];
    this.values = [];
    this.at = 0;
    return this.size;
  }

  fill(key: string, value: V): void {
    this.keys.push(key);
    this.values.push(value);
  }
}

import Database from 'better-sqlite3';
import { SEEN_MEMORY_KEYS } from '../config.js';

/**
 * The job keys one run has seen, to recognise repeated items.
 *
 * Keys are SHA-256 digests in hex. The first SEEN_MEMORY_KEYS of them live in an open-addressing
 * table of their first 96 bits (12 bytes a key, no per-key objects): two different keys of one run
 * agreeing on 96 bits of SHA-256 is not a practical event (about 10^-17 for a million items). Beyond that, keys go to a private
 * scratch database (an unnamed temporary file: no lock, no journal, no fsync), so a manifest of
 * any length keeps memory bounded and the ledger untouched.
 */
const WORDS = 3;
/**
 * The table is 16 segments (by the key's first hex digit), each doubling on its own: a doubling
 * holds the old and the new copy of one segment until the next full GC, not of the whole table
 * (whose size at a million keys set the peak RSS of a re-run).
 */
const SEGMENTS = 16;

class Segment {
  table = new Uint32Array(64 * WORDS);
  mask = 63;
  count = 0;

  /** `maxSlots`: the segment's share of the memory bound (a power of two) */
  constructor(private readonly maxSlots: number) {}

  /** 1: added, 0: already there, -1: no room (the caller spills) */
  add(w0: number, w1: number, w2: number, room: boolean): number {
    const t = this.table;
    for (let slot = w0 & this.mask; ; slot = (slot + 1) & this.mask) {
      const i = slot * WORDS;
      if ((t[i]! | t[i + 1]! | t[i + 2]!) === 0) {
        // At its largest a segment stays at most half full, so every probe still ends.
        if (!room || this.count * 2 >= this.maxSlots) return -1;
        t[i] = w0;
        t[i + 1] = w1;
        t[i + 2] = w2;
        this.count += 1;
        if (this.count * 2 > this.mask && this.mask + 1 < this.maxSlots) this.grow();
        return 1;
      }
      if (t[i] === w0 && t[i + 1] === w1 && t[i + 2] === w2) return 0;
    }
  }

  /** Doubles the segment (load at most one half). */
  private grow(): void {
    const old = this.table;
    this.mask = this.mask * 2 + 1;
    const t = new Uint32Array((this.mask + 1) * WORDS);
    for (let i = 0; i < old.length; i += WORDS) {
      const w0 = old[i]!;
      const w1 = old[i + 1]!;
      const w2 = old[i + 2]!;
      if ((w0 | w1 | w2) === 0) continue;
      let j = (w0 & this.mask) * WORDS;
      while (t[j]! | t[j + 1]! | t[j + 2]!) j = (j + WORDS) % t.length;
      t[j] = w0;
      t[j + 1] = w1;
      t[j + 2] = w2;
    }
    this.table = t;
  }
}

export class SeenKeys {
  private readonly segments: Segment[];
  private inMemory = 0;
  private db: Database.Database | null = null;
  private insert: Database.Statement | null = null;
  private spilled = 0;

  constructor(private readonly memoryKeys = SEEN_MEMORY_KEYS) {
    // All segments together hold at most twice memoryKeys slots (48 MiB by default).
    let share = 64;
    while (share * 2 * SEGMENTS <= memoryKeys * 2) share *= 2;
    this.segments = Array.from({ length: SEGMENTS }, () => new Segment(share));
  }

  /** Slots of the in-memory table: what its memory is, 12 bytes each. */
  get slots(): number {
    return this.segments.reduce((n, s) => n + s.table.length / WORDS, 0);
  }

  /** True the first time a key is offered in this run. */
  add(key: string): boolean {
    const w0 = parseInt(key.slice(0, 8), 16) >>> 0;
    const w1 = parseInt(key.slice(8, 16), 16) >>> 0;
    const w2 = parseInt(key.slice(16, 24), 16) >>> 0;
    if ((w0 | w1 | w2) === 0 || key.length !== 64) return this.addSpilled(key);
    // The segment comes from the top bits, the slot from the low bits of the same word.
    const added = this.segments[w0 >>> 28]!.add(w0, w1, w2, this.inMemory < this.memoryKeys);
    if (added === -1) return this.addSpilled(key);
    if (added === 1) this.inMemory += 1;
    return added === 1;
  }

  private addSpilled(key: string): boolean {
    if (!this.db) {
      this.db = new Database('');
      this.db.pragma('journal_mode = OFF');
      this.db.pragma('synchronous = OFF');
      this.db.pragma('cache_size = -16384');
      this.db.exec('CREATE TABLE seen (key TEXT PRIMARY KEY) WITHOUT ROWID; BEGIN');
      this.insert = this.db.prepare('INSERT OR IGNORE INTO seen (key) VALUES (?)');
    }
    const fresh = this.insert!.run(key).changes === 1;
    if ((this.spilled += 1) % 4096 === 0) this.db.exec('COMMIT; BEGIN');
    return fresh;
  }

  close(): void {
    this.db?.close();
  }
}

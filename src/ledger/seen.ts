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

export class SeenKeys {
  private table = new Uint32Array(1024 * WORDS);
  private mask = 1023;
  private inMemory = 0;
  private db: Database.Database | null = null;
  private insert: Database.Statement | null = null;
  private spilled = 0;

  constructor(private readonly memoryKeys = SEEN_MEMORY_KEYS) {}

  /** True the first time a key is offered in this run. */
  add(key: string): boolean {
    const w0 = parseInt(key.slice(0, 8), 16) >>> 0;
    const w1 = parseInt(key.slice(8, 16), 16) >>> 0;
    const w2 = parseInt(key.slice(16, 24), 16) >>> 0;
    if ((w0 | w1 | w2) === 0 || key.length !== 64) return this.addSpilled(key);
    const t = this.table;
    for (let slot = w0 & this.mask; ; slot = (slot + 1) & this.mask) {
      const i = slot * WORDS;
      if ((t[i]! | t[i + 1]! | t[i + 2]!) === 0) {
        if (this.inMemory >= this.memoryKeys) return this.addSpilled(key);
        t[i] = w0;
        t[i + 1] = w1;
        t[i + 2] = w2;
        this.inMemory += 1;
        if (this.inMemory * 2 > this.mask) this.grow();
        return true;
      }
      if (t[i] === w0 && t[i + 1] === w1 && t[i + 2] === w2) return false;
    }
  }

  /** Doubles the table while it stays under the memory bound (load at most one half). */
  private grow(): void {
    if ((this.mask + 1) * 2 > this.memoryKeys * 2) return;
    const old = this.table;
    this.mask = this.mask * 2 + 1;
    this.table = new Uint32Array((this.mask + 1) * WORDS);
    for (let i = 0; i < old.length; i += WORDS) {
      if ((old[i]! | old[i + 1]! | old[i + 2]!) === 0) continue;
      let slot = old[i]! & this.mask;
      const t = this.table;
      while (t[slot * WORDS]! | t[slot * WORDS + 1]! | t[slot * WORDS + 2]!) slot = (slot + 1) & this.mask;
      this.table.set(old.subarray(i, i + WORDS), slot * WORDS);
    }
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

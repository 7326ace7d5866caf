import Database from 'better-sqlite3';

/**
 * The job keys one run has seen, to recognise repeated items. Kept in a private scratch database
 * (an unnamed temporary file: no lock, no journal, no fsync) rather than in memory or in a write to
 * every job row, so a manifest of millions of lines keeps memory flat and the ledger untouched.
 */
export class SeenKeys {
  private readonly db = new Database('');
  private readonly insert;
  private count = 0;

  constructor() {
    this.db.pragma('journal_mode = OFF');
    this.db.pragma('synchronous = OFF');
    this.db.pragma('cache_size = -16384');
    this.db.exec('CREATE TABLE seen (key TEXT PRIMARY KEY) WITHOUT ROWID; BEGIN');
    this.insert = this.db.prepare('INSERT OR IGNORE INTO seen (key) VALUES (?)');
  }

  /** True the first time a key is offered in this run. */
  add(key: string): boolean {
    const fresh = this.insert.run(key).changes === 1;
    if ((this.count += 1) % 4096 === 0) this.db.exec('COMMIT; BEGIN');
    return fresh;
  }

  close(): void {
    this.db.close();
  }
}

import type Database from 'better-sqlite3';
import type { GroupCommit } from './group-commit.js';

/** The runs table (one row per download) and the invalid manifest lines runs have read. */
export class RunsTable {
  private readonly stmt;

  constructor(db: Database.Database, private readonly group: GroupCommit, private readonly runId: string) {
    this.stmt = {
      begin: db.prepare('INSERT INTO runs (id, started_at, argv) VALUES (?, ?, ?)'),
      end: db.prepare('UPDATE runs SET ended_at = ?, counts = ?, exit_code = ? WHERE id = ?'),
      invalidSave: db.prepare(`INSERT INTO invalid_lines (source, message, run_id, seen_at) VALUES (?, ?, ?, ?)
        ON CONFLICT (source, message) DO UPDATE SET seen_at = excluded.seen_at`),
      invalidKnown: db.prepare('SELECT 1 FROM invalid_lines WHERE source = ? AND message = ?'),
    };
  }

  begin(argv: readonly string[], now: number): void {
    this.group.write(() => this.stmt.begin.run(this.runId, now, JSON.stringify(argv)));
  }

  end(counts: Record<string, number>, exitCode: number, now: number): void {
    this.group.write(() => this.stmt.end.run(now, JSON.stringify(counts), exitCode, this.runId));
  }

  /** Stores an invalid manifest line; true when this line (source and message) was not known before. */
  invalidLine(source: string, message: string, now: number): boolean {
    const known = this.stmt.invalidKnown.get(source, message) !== undefined;
    this.group.write(() => this.stmt.invalidSave.run(source, message, this.runId, now));
    return !known;
  }
}

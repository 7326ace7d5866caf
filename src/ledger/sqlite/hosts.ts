import type Database from 'better-sqlite3';
import type { HostRow } from '../types.js';
import type { GroupCommit } from './group-commit.js';

/** The hosts table: breakers and Retry-After pauses that outlive a run. */
export class HostsTable {
  private readonly stmt;

  constructor(db: Database.Database, private readonly group: GroupCommit) {
    this.stmt = {
      one: db.prepare('SELECT host, breaker_state, open_until, cooldown_until, failures, last_error, updated_at FROM hosts WHERE host = ?'),
      save: db.prepare(`INSERT OR REPLACE INTO hosts (host, breaker_state, open_until, cooldown_until, failures, last_error, updated_at)
        VALUES (@host, @breaker_state, @open_until, @cooldown_until, @failures, @last_error, @now)`),
    };
  }

  get(name: string): (HostRow & { updated_at: number }) | undefined {
    return this.stmt.one.get(name) as (HostRow & { updated_at: number }) | undefined;
  }

  save(row: HostRow, now: number): void {
    this.group.write(() => this.stmt.save.run({ ...row, now }));
  }
}

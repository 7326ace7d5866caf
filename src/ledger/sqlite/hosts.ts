import type Database from 'better-sqlite3';
import type { HostRow } from '../types.js';
import type { GroupCommit } from './group-commit.js';

/** The hosts table (breakers and Retry-After pauses that outlive a run) and the shared pace of paced hosts. */
export class HostsTable {
  private readonly stmt;

  constructor(db: Database.Database, private readonly group: GroupCommit) {
    this.stmt = {
      one: db.prepare('SELECT host, breaker_state, open_until, cooldown_until, failures, last_error, updated_at FROM hosts WHERE host = ?'),
      save: db.prepare(`INSERT OR REPLACE INTO hosts (host, breaker_state, open_until, cooldown_until, failures, last_error, updated_at)
        VALUES (@host, @breaker_state, @open_until, @cooldown_until, @failures, @last_error, @now)`),
      // The slot booked is the later of the host's next free slot and now; the next one is a
      // spacing after it. Run inside the write lock, so two processes never book the same slot.
      book: db.prepare(`INSERT INTO host_pace (host, next_at) VALUES (@host, @now + @spacing)
        ON CONFLICT (host) DO UPDATE SET next_at = max(next_at, @now) + @spacing
        RETURNING next_at - @spacing`).pluck(),
      later: db.prepare('UPDATE host_pace SET next_at = max(next_at, @at) WHERE host = @host'),
    };
  }

  book(host: string, spacingMs: number, now: number): number {
    return this.group.write(() => this.stmt.book.get({ host, spacing: spacingMs, now }) as number);
  }

  notBefore(host: string, at: number): void {
    this.group.write(() => this.stmt.later.run({ host, at }));
  }

  get(name: string): (HostRow & { updated_at: number }) | undefined {
    return this.stmt.one.get(name) as (HostRow & { updated_at: number }) | undefined;
  }

  save(row: HostRow, now: number): void {
    this.group.write(() => this.stmt.save.run({ ...row, now }));
  }
}

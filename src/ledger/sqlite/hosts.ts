import type Database from 'better-sqlite3';
import { LATE_SEND_MS } from '../../config.js';
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
      // The host is taken only if it is free now; run inside the write lock, so two processes
      // never both take it.
      take: db.prepare(`INSERT INTO host_pace (host, next_at) VALUES (@host, @now + @spacing)
        ON CONFLICT (host) DO UPDATE SET next_at = @now + @spacing WHERE next_at <= @now
        RETURNING next_at`),
      nextAt: db.prepare('SELECT next_at FROM host_pace WHERE host = ?').pluck(),
      later: db.prepare('UPDATE host_pace SET next_at = max(next_at, @at) WHERE host = @host'),
      // Run inside the write lock: no other process takes one between the count and the insert.
      takePermit: db.prepare(`INSERT INTO host_permits (host, owner, expires_at) SELECT @host, @owner, @expires
        WHERE (SELECT COUNT(*) FROM host_permits WHERE host = @host AND expires_at >= @now) < @cap`),
      free: db.prepare('DELETE FROM host_permits WHERE id = ?'),
      renewPermits: db.prepare('UPDATE host_permits SET expires_at = @expires WHERE owner = @owner'),
      owners: db.prepare('SELECT DISTINCT owner FROM host_permits').pluck(),
      dropOwner: db.prepare('DELETE FROM host_permits WHERE owner = ?'),
      failure: db.prepare(`INSERT INTO hosts (host, breaker_state, failures, updated_at) VALUES (@host, 'closed', @failed, @now)
        ON CONFLICT (host) DO UPDATE SET failures = CASE WHEN @failed = 1 THEN failures + 1 ELSE 0 END, updated_at = @now
        RETURNING failures`).pluck(),
    };
  }

  takePermit(host: string, owner: string, cap: number, now: number, ttlMs: number): number | null {
    const r = this.group.write(() => this.stmt.takePermit.run({ host, owner, cap, now, expires: now + ttlMs }));
    return r.changes === 1 ? Number(r.lastInsertRowid) : null;
  }

  freePermit(id: number): void {
    this.group.write(() => this.stmt.free.run(id));
  }

  renewPermits(owner: string, expires: number): void {
    this.group.write(() => this.stmt.renewPermits.run({ owner, expires }));
  }

  dropPermitsOf(isDead: (owner: string) => boolean): number {
    let n = 0;
    for (const owner of this.stmt.owners.all() as string[]) if (isDead(owner)) n += this.group.write(() => this.stmt.dropOwner.run(owner).changes);
    return n;
  }

  countFailure(host: string, failed: boolean, now: number): number {
    return this.group.write(() => this.stmt.failure.get({ host, failed: failed ? 1 : 0, now }) as number);
  }

  /** Null: the host is this request's now (and free again a spacing later). Else when it is next free. */
  takeSlot(host: string, spacingMs: number, now: number): number | null {
    // Taken, as most asks of a host shared with others find it: a read, no write lock.
    const seen = this.stmt.nextAt.get(host) as number | undefined;
    if (seen !== undefined && seen > now) return seen;
    // A wait for the write lock (as long as a late send) is added: the host is taken from when it is written.
    const asked = Date.now();
    return this.group.write(() => {
      const waited = Date.now() - asked;
      const at = waited >= LATE_SEND_MS ? now + waited : now;
      return this.stmt.take.get({ host, spacing: spacingMs, now: at }) ? null : (this.stmt.nextAt.get(host) as number);
    });
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

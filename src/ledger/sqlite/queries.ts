import type Database from 'better-sqlite3';
import { countByHost, type HostRow, type InvalidLineRow, type JobRow, type LedgerReads, type RunRow, type StatusCounts } from '../types.js';

/**
 * What `status`, `export` and `--dry-run` read: no writes, so it also runs on a ledger opened
 * read-only. `beforeRead` commits the writer's open group first, when there is one.
 */
export class LedgerQueries implements LedgerReads {
  constructor(private readonly db: Database.Database, private readonly beforeRead: () => void = () => undefined) {}

  counts(): StatusCounts {
    this.beforeRead();
    const group = (col: string, where = ''): Record<string, number> =>
      Object.fromEntries(
        (this.db.prepare(`SELECT ${col} AS k, COUNT(*) AS n FROM jobs ${where} GROUP BY ${col}`).all() as { k: string; n: number }[]).map((r) => [r.k ?? 'none', r.n]),
      );
    const store = this.db
      .prepare(`SELECT COUNT(*) AS objects, COALESCE(SUM(bytes), 0) AS bytes FROM (SELECT sha256, MAX(bytes) AS bytes FROM jobs WHERE state = 'done' AND sha256 IS NOT NULL GROUP BY sha256)`)
      .get() as { objects: number; bytes: number };
    const scalar = (sql: string): number => (this.db.prepare(sql).pluck().get() as number | undefined) ?? 0;
    return {
      byState: group('state'),
      // A job never finished has no status yet: its state says where it is.
      byStatus: group('COALESCE(status, state)'),
      byReason: group('reason', 'WHERE reason IS NOT NULL'),
      byResolver: group("COALESCE(resolver, 'manifest')", "WHERE state = 'done'"),
      objects: store.objects,
      bytesStored: store.bytes,
      failedPermanently: scalar("SELECT COUNT(*) FROM jobs WHERE state = 'failed' AND next_attempt_at IS NULL"),
      invalidLines: scalar('SELECT COUNT(*) FROM invalid_lines'),
    };
  }

  /** A job by key (dry-run's look-up). */
  job(key: string): JobRow | undefined {
    return this.db.prepare('SELECT * FROM jobs WHERE key = ?').get(key) as JobRow | undefined;
  }

  jobs(): IterableIterator<JobRow> {
    this.beforeRead();
    return this.db.prepare('SELECT * FROM jobs ORDER BY created_at, key').iterate() as IterableIterator<JobRow>;
  }

  runs(): RunRow[] {
    this.beforeRead();
    return this.db.prepare('SELECT * FROM runs ORDER BY started_at').all() as RunRow[];
  }

  attempts(): IterableIterator<Record<string, unknown>> {
    this.beforeRead();
    return this.db.prepare('SELECT a.*, j.item_id FROM attempts a LEFT JOIN jobs j ON j.key = a.job_key ORDER BY a.id').iterate() as IterableIterator<Record<string, unknown>>;
  }

  invalidLines(): InvalidLineRow[] {
    this.beforeRead();
    return this.db.prepare('SELECT source, message, run_id, seen_at FROM invalid_lines ORDER BY seen_at, source').all() as InvalidLineRow[];
  }

  hosts(): Map<string, HostRow> {
    return new Map((this.db.prepare('SELECT host, breaker_state, open_until, cooldown_until, failures, last_error FROM hosts').all() as HostRow[]).map((r) => [r.host, r]));
  }

  /** Failed attempts per host since `since`. */
  recentFailures(since: number): Map<string, number> {
    this.beforeRead();
    return countByHost(this.db.prepare('SELECT url FROM attempts WHERE error IS NOT NULL AND started_at >= ?').pluck().iterate(since) as IterableIterator<string>);
  }
}

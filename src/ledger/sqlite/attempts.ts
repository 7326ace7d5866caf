import type Database from 'better-sqlite3';
import type { AttemptRow } from '../types.js';
import type { GroupCommit } from './group-commit.js';

const COLUMNS = ['job_key', 'run_id', 'url', 'final_url', 'http_status', 'bytes', 'elapsed_ms', 'error', 'resume_from', 'resume_decision', 'started_at', 'sha256', 'path', 'fsync_ms', 'dedup', 'throughput_bps'] as const;

/** The attempts table: one row per HTTP attempt, written in the run's group commits. */
export class AttemptsTable {
  private readonly insert;

  constructor(db: Database.Database, private readonly group: GroupCommit, private readonly runId: string) {
    this.insert = db.prepare(`INSERT INTO attempts (${COLUMNS.join(', ')}) VALUES (${COLUMNS.map(() => '?').join(', ')})`);
  }

  record(a: AttemptRow): void {
    const throughput = a.elapsed_ms > 0 ? Math.round((a.bytes * 1000) / a.elapsed_ms) : null;
    this.group.write(() =>
      this.insert.run(a.job_key, this.runId, a.url, a.final_url, a.http_status, a.bytes, a.elapsed_ms, a.error, a.resume_from, a.resume_decision, a.started_at, a.sha256 ?? null, a.path ?? null, a.fsync_ms ?? null, a.dedup ?? null, throughput),
    );
  }
}

import type Database from 'better-sqlite3';
import type { PartRow } from '../types.js';
import type { GroupCommit } from './group-commit.js';

/** The parts table: the validators each part in progress began with, so a resume never splices. */
export class PartsTable {
  private readonly stmt;

  constructor(db: Database.Database, private readonly group: GroupCommit) {
    this.stmt = {
      get: db.prepare('SELECT url, etag, last_modified, total FROM parts WHERE job_key = ?'),
      save: db.prepare(`INSERT OR REPLACE INTO parts (job_key, url, etag, last_modified, total, started_at) VALUES (@job, @url, @etag, @last_modified, @total, @now)`),
      drop: db.prepare('DELETE FROM parts WHERE job_key = ?'),
      keys: db.prepare('SELECT job_key FROM parts'),
    };
  }

  get(jobKey: string): PartRow | undefined {
    return this.stmt.get.get(jobKey) as PartRow | undefined;
  }

  save(jobKey: string, part: PartRow, now: number): void {
    this.group.write(() => this.stmt.save.run({ ...part, job: jobKey, now }));
  }

  drop(jobKey: string): void {
    this.group.write(() => this.stmt.drop.run(jobKey));
  }

  keys(): string[] {
    this.group.flush();
    return (this.stmt.keys.all() as { job_key: string }[]).map((r) => r.job_key);
  }
}

import type Database from 'better-sqlite3';
import type { OpResult, OpRow } from '../types.js';
import type { GroupCommit } from './group-commit.js';

const OP_COLUMNS = 'key, job_key, kind, state, detail, result, owner';

function statements(db: Database.Database) {
  return {
    get: db.prepare('SELECT state, result FROM ops WHERE key = ?'),
    begin: db.prepare(`INSERT INTO ops (key, job_key, kind, state, owner, detail, created_at, updated_at) VALUES (?, ?, ?, 'started', ?, ?, ?, ?)
      ON CONFLICT (key) DO NOTHING`),
    retake: db.prepare(`UPDATE ops SET owner = ?, updated_at = ? WHERE key = ? AND state = 'started'`),
    record: db.prepare(`INSERT INTO ops (key, job_key, kind, state, owner, detail, result, created_at, updated_at) VALUES (?, ?, ?, 'done', ?, ?, ?, ?, ?)
      ON CONFLICT (key) DO UPDATE SET state = 'done', owner = excluded.owner, result = excluded.result, updated_at = excluded.updated_at`),
    finish: db.prepare(`UPDATE ops SET state = 'done', result = @result, updated_at = @now WHERE key = @key`),
    inState: db.prepare(`SELECT ${OP_COLUMNS} FROM ops WHERE state = ? ORDER BY created_at`),
    drop: db.prepare('DELETE FROM ops WHERE key = ?'),
    unrecorded: db.prepare(`SELECT ${OP_COLUMNS.split(', ').map((c) => `o.${c}`).join(', ')} FROM ops o JOIN jobs j ON j.key = o.job_key
      WHERE o.kind = 'finalize' AND o.state = 'done' AND j.state IN ('pending', 'failed')`),
  };
}

/** The ops table: each side effect under its deterministic key, begun, done, replayed. */
export class OpsTable {
  private readonly stmt;

  constructor(db: Database.Database, private readonly group: GroupCommit) {
    this.stmt = statements(db);
  }

  /** An op already done is replayed from its stored result instead of running again. */
  begin(key: string, jobKey: string, kind: OpRow['kind'], owner: string, now: number, detail: string | null = null): OpResult {
    return this.group.write(() => {
      // Almost every op is new: one insert, and a look-up only when the key was there already.
      if (this.stmt.begin.run(key, jobKey, kind, owner, detail, now, now).changes === 1) return { state: 'new', result: null };
      const existing = this.stmt.get.get(key) as { state: 'started' | 'done'; result: string | null };
      if (existing.state === 'done') return { state: 'done', result: existing.result ? JSON.parse(existing.result) : null };
      this.stmt.retake.run(owner, now, key);
      return { state: 'started', result: null };
    });
  }

  finish(key: string, result: unknown, now: number): void {
    this.group.write(() => this.stmt.finish.run({ key, result: JSON.stringify(result), now }));
  }

  record(key: string, jobKey: string, kind: OpRow['kind'], owner: string, now: number, detail: string | null, result: unknown): void {
    this.group.write(() => this.stmt.record.run(key, jobKey, kind, owner, detail, JSON.stringify(result), now, now));
  }

  drop(key: string): void {
    this.group.write(() => this.stmt.drop.run(key));
  }

  inState(state: OpRow['state']): OpRow[] {
    this.group.flush();
    return this.stmt.inState.all(state) as OpRow[];
  }

  unrecordedFinalizes(): OpRow[] {
    this.group.flush();
    return this.stmt.unrecorded.all() as OpRow[];
  }
}

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { SCHEMA_VERSION } from '../../src/ledger/open.js';
import { SqliteLedger } from '../../src/ledger/sqlite.js';
import { WriteLock } from '../../src/ledger/sqlite/write-lock.js';

const DIST_LOCK = resolve(import.meta.dirname, '../../dist/ledger/sqlite/write-lock.js');

/**
 * A writer in another process that holds the write lock almost all the time, as a busy download
 * does: transactions of ~20 ms back to back, until the waiter says it is done (or 400 of them).
 */
const HOLDER = `
import Database from 'better-sqlite3';
import { WriteLock } from ${JSON.stringify(DIST_LOCK)};
const db = new Database(process.argv[1]);
db.pragma('journal_mode = WAL');
const lock = new WriteLock(db, 15000);
const insert = db.prepare("INSERT INTO t (who) VALUES ('holder')");
const done = db.prepare("SELECT count(*) AS n FROM t WHERE who = 'done'");
for (let i = 0; i < 400 && done.get().n === 0; i += 1) {
  lock.begin();
  insert.run();
  const until = performance.now() + 20;
  while (performance.now() < until);
  lock.commit();
  if (i === 0) process.stdout.write('ready\\n');
}
`;

describe('the ledger write lock', () => {
  it('lets a second process in between the transactions of a busy one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'docstokg-lock-'));
    const path = join(dir, 'ledger.sqlite');
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    db.exec('CREATE TABLE t (n INTEGER PRIMARY KEY, who TEXT)');
    const holder = spawn(process.execPath, ['--input-type=module', '-e', HOLDER, path], { cwd: resolve(import.meta.dirname, '../..'), stdio: ['ignore', 'pipe', 'inherit'] });
    const ended = new Promise((r) => holder.on('close', r));
    await new Promise<void>((ready) => holder.stdout.once('data', () => ready()));

    const lock = new WriteLock(db, 15_000);
    const insert = db.prepare("INSERT INTO t (who) VALUES (?)");
    for (let i = 0; i < 10; i += 1) {
      lock.begin();
      insert.run(i === 9 ? 'done' : 'waiter');
      lock.commit();
    }
    await ended;

    const rows = db.prepare('SELECT who FROM t ORDER BY n').all() as { who: string }[];
    const firstMine = rows.findIndex((r) => r.who !== 'holder');
    const lastMine = rows.findIndex((r) => r.who === 'done');
    // Ten transactions of ours needed no more than a few of the holder's each; SQLite's own busy
    // handler left them waiting for the holder's whole run.
    expect(lastMine - firstMine - 9).toBeLessThanOrEqual(30);
    expect(rows.filter((r) => r.who === 'holder').length).toBeLessThan(400);
    expect(existsSync(`${path}-wait`)).toBe(false);
    db.close();
  });

  it('opens (and migrates) a ledger another process keeps writing to', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'docstokg-lock-'));
    const path = join(dir, 'ledger.sqlite');
    new SqliteLedger(path).close();
    // A ledger one migration behind, so opening it needs the write lock.
    const db = new Database(path);
    db.exec(`CREATE TABLE t (n INTEGER PRIMARY KEY, who TEXT); DROP TABLE host_permits; PRAGMA user_version = ${SCHEMA_VERSION - 1}`);
    const holder = spawn(process.execPath, ['--input-type=module', '-e', HOLDER, path], { cwd: resolve(import.meta.dirname, '../..'), stdio: ['ignore', 'pipe', 'inherit'] });
    const ended = new Promise((r) => holder.on('close', r));
    await new Promise<void>((ready) => holder.stdout.once('data', () => ready()));
    const ledger = new SqliteLedger(path);
    ledger.close();
    const lock = new WriteLock(db, 15_000);
    lock.begin();
    db.prepare("INSERT INTO t (who) VALUES ('done')").run();
    lock.commit();
    await ended;
    expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    // In before the holder's 400 transactions (8 s) ran out; SQLite's busy handler waited them out.
    expect((db.prepare("SELECT count(*) AS n FROM t WHERE who = 'holder'").get() as { n: number }).n).toBeLessThan(100);
    db.close();
  });

  it('still gives up after the lock timeout, with SQLITE_BUSY', () => {
    const dir = mkdtempSync(join(tmpdir(), 'docstokg-lock-'));
    const path = join(dir, 'ledger.sqlite');
    const a = new Database(path);
    a.pragma('journal_mode = WAL');
    a.exec('CREATE TABLE t (n INTEGER PRIMARY KEY)');
    const b = new Database(path);
    a.exec('BEGIN IMMEDIATE');
    const lock = new WriteLock(b, 50);
    expect(() => lock.begin()).toThrow(expect.objectContaining({ code: 'SQLITE_BUSY' }));
    a.exec('COMMIT');
    lock.begin();
    lock.commit();
    expect(existsSync(`${path}-wait`)).toBe(false);
  });
});

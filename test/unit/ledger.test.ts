import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SCHEMA_VERSION } from '../../src/ledger/open.js';
import { SqliteLedger } from '../../src/ledger/sqlite.js';
import { SeenKeys } from '../../src/ledger/seen.js';
import { SEEN_MEMORY_KEYS } from '../../src/config.js';
import { jobKey } from '../../src/manifest/parse.js';
import { DONE, itemOf } from '../helpers/ledger.js';
import { recordFromRow } from '../../src/record.js';

const mk = itemOf;
const done = DONE;

describe('SqliteLedger', () => {
  let dir: string;
  let path: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'docstokg-ledger-'));
    path = join(dir, 'l.sqlite');
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  it('creates the schema in WAL mode with its version', () => {
    new SqliteLedger(path).close();
    const db = new Database(path, { readonly: true });
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map((t) => t.name);
    expect(tables).toEqual(expect.arrayContaining(['jobs', 'ops', 'attempts', 'runs']));
    db.close();
  });

  it('refuses a ledger from a newer version', () => {
    const db = new Database(path);
    db.pragma(`user_version = ${SCHEMA_VERSION + 5}`);
    db.close();
    expect(() => new SqliteLedger(path)).toThrow(/newer/);
  });

  it('returns a new job exactly as stored, without reading it back', () => {
    const a = new SqliteLedger(path);
    const item = mk('https://a.org/new.pdf?b=1', 'new');
    const planned = a.plan(item, 7);
    if (planned.kind !== 'work') throw new Error(`planned ${planned.kind}`);
    expect(planned.row).toEqual(a.job(item.key));
    a.close();
  });

  it('committed() brings the group\'s commit forward to the end of the turn, shared by that turn\'s writes', async () => {
    const a = new SqliteLedger(path);
    const item = mk('https://a.org/barrier.pdf');
    const later = mk('https://a.org/barrier-2.pdf');
    a.plan(item, 1);
    a.plan(later, 1);
    await a.committed();
    a.savePart(item.key, { url: 'https://a.org/barrier.pdf', etag: '"v1"', last_modified: null, total: 1 << 20 }, 2);
    const other = new Database(path, { readonly: true });
    const visible = (key: string): boolean => other.prepare('SELECT 1 FROM parts WHERE job_key = ?').get(key) !== undefined;
    let resolved = false;
    const barrier = a.committed().then(() => (resolved = true));
    // Asking is not committing at once: a write later in the same turn joins the same commit.
    expect(visible(item.key)).toBe(false);
    a.savePart(later.key, { url: 'https://a.org/barrier-2.pdf', etag: '"v2"', last_modified: null, total: 1 << 20 }, 2);
    expect(resolved).toBe(false);
    await barrier;
    expect(visible(item.key)).toBe(true);
    expect(visible(later.key)).toBe(true);
    // Nothing pending: resolves at once.
    await a.committed();
    other.close();
    a.close();
  });

  it('begins an op once: new, then started for a later holder, and done once finished', () => {
    const a = new SqliteLedger(path);
    expect(a.beginOp('op1', 'job1', 'finalize', 'me', 1, 'd')).toEqual({ state: 'new', result: null });
    expect(a.beginOp('op1', 'job1', 'finalize', 'other', 2, 'd')).toEqual({ state: 'started', result: null });
    expect(a.ops('started')).toMatchObject([{ key: 'op1', owner: 'other', detail: 'd' }]);
    a.finishOp('op1', { path: 'ab/x.pdf' }, 3);
    expect(a.beginOp('op1', 'job1', 'finalize', 'third', 4, 'd')).toEqual({ state: 'done', result: { path: 'ab/x.pdf' } });
    expect(a.ops('done')).toMatchObject([{ key: 'op1', owner: 'other' }]);
    a.close();
  });

  it('builds the skipped record of a done job in SQL exactly as recordFromRow does', () => {
    const a = new SqliteLedger(path);
    const item = mk('https://a.org/ünï"code\\x.pdf', 'id "quoted" \u2028 é');
    a.plan(item, 1);
    a.claim(item.key, 'me', 1, 1000);
    a.finish(item.key, 'me', { ...done, etag: '"v1"', last_modified: 'Tue, 01 Jan 2030 00:00:00 GMT', url: item.candidates[0]!.href }, 2);
    a.close();
    const b = new SqliteLedger(path);
    const full = b.plan(item, 3);
    b.close();
    const c = new SqliteLedger(path);
    const quick = c.plan(item, 3, { skippedRecord: true });
    c.close();
    if (full.kind !== 'done' || quick.kind !== 'skipped') throw new Error(`unexpected ${full.kind} / ${quick.kind}`);
    const expected = recordFromRow(full.row, { status: 'skipped', attempts: 0, elapsed_ms: 0, resumed_from: 0, source: item.source });
    expect(quick.json).toBe(JSON.stringify(expected));
  });

  it('answers done jobs the same in planning order (read-ahead) and in any other order', () => {
    const a = new SqliteLedger(path);
    const items = Array.from({ length: 3000 }, (_, i) => mk(`https://a.org/${i}.pdf`, `i${i}`));
    for (const [i, it] of items.entries()) {
      a.plan(it, 1);
      // every seventh job is left pending, so the read-ahead also meets rows that are not done
      if (i % 7 === 0) continue;
      a.claim(it.key, 'me', 1, 1000);
      a.finish(it.key, 'me', { ...done, url: it.candidates[0]!.href }, 2);
    }
    a.close();
    const shuffled = items.map((it, i) => ({ it, r: (i * 7919) % 3001 })).sort((x, y) => x.r - y.r).map((x) => x.it);
    // an edited manifest: lines taken out, so the next row read ahead is not always the next line
    const thinned = items.filter((_, i) => i % 5 !== 2);
    for (const order of [items, shuffled, [...items].reverse(), thinned]) {
      const l = new SqliteLedger(path);
      for (const it of order) {
        const p = l.plan(it, 3, { skippedRecord: true });
        const i = Number(it.id.slice(1));
        if (i % 7 === 0) expect(p.kind).toBe('work');
        else expect(p.kind === 'skipped' && JSON.parse(p.json)).toMatchObject({ id: it.id, status: 'skipped', source: it.source });
      }
      l.close();
    }
  });

  it('remembers seen keys in memory and, past its bound, in a scratch file', () => {
    const seen = new SeenKeys(1000);
    const keys = Array.from({ length: 5000 }, (_, i) => jobKey(`k${i}`, []));
    for (const k of keys) expect(seen.add(k)).toBe(true);
    for (const k of keys) expect(seen.add(k)).toBe(false);
    // The in-memory table never outgrows its bound: at most two slots a key it may hold.
    expect(seen.slots).toBeGreaterThan(0);
    expect(seen.slots).toBeLessThanOrEqual(2 * 1000);
    // Keys that agree on a long prefix are still told apart beyond the memory bound.
    expect(seen.add(`${'0'.repeat(32)}${keys[0]!.slice(32)}`)).toBe(true);
    expect(seen.add(`${'0'.repeat(32)}${keys[0]!.slice(32)}`)).toBe(false);
    seen.close();
  });

  it('keeps every seen key while its segments double one at a time', () => {
    const seen = new SeenKeys();
    const keys = Array.from({ length: 100_000 }, (_, i) => jobKey(`s${i}`, []));
    for (const k of keys) expect(seen.add(k)).toBe(true);
    for (const k of keys) expect(seen.add(k)).toBe(false);
    expect(seen.add(jobKey('s-new', []))).toBe(true);
    expect(seen.slots).toBeLessThanOrEqual(2 * SEEN_MEMORY_KEYS);
    seen.close();
  });

  it('knows the leases it holds without asking the table, and agrees with the table', () => {
    const a = new SqliteLedger(path);
    const b = new SqliteLedger(path);
    const item = mk('https://a.org/held.pdf');
    const agree = (owner: string, now: number): boolean => {
      const held = a.holds(item.key, owner, now);
      expect(a.holdsInTable(item.key, owner, now)).toBe(held);
      return held;
    };
    a.plan(item, 0);
    expect(agree('p1', 0)).toBe(false);
    expect(a.claim(item.key, 'p1', 0, 100)).toBe(true);
    expect(agree('p1', 100)).toBe(true);
    expect(agree('p1', 101)).toBe(false);
    expect(a.renew('p1', 90, 100)).toBe(1);
    expect(agree('p1', 190)).toBe(true);
    a.flush();
    // Another process takes the job once the lease expired: a's renewal then finds it gone.
    expect(b.claim(item.key, 'p2', 191, 100)).toBe(true);
    b.flush();
    expect(a.renew('p1', 200, 100)).toBe(0);
    a.flush();
    expect(agree('p1', 200)).toBe(false);
    expect(a.holds(item.key, 'p2', 200)).toBe(false);
    expect(b.holds(item.key, 'p2', 200)).toBe(true);
    expect(b.release(item.key, 'p2', 250)).toBe(true);
    b.flush();
    expect(b.holds(item.key, 'p2', 250)).toBe(false);
    // A writer that breaks the protocol (a live lease taken early) shows only in the table.
    expect(a.claim(item.key, 'p1', 300, 100)).toBe(true);
    a.flush();
    const db = new Database(path);
    db.prepare("UPDATE jobs SET lease_owner = 'thief' WHERE key = ?").run(item.key);
    db.close();
    expect(a.holds(item.key, 'p1', 310)).toBe(true);
    expect(a.holdsInTable(item.key, 'p1', 310)).toBe(false);
    a.close();
    b.close();
  });

  it('replays an op that already ran from its stored result', () => {
    const l = new SqliteLedger(path);
    expect(l.beginOp('op1', 'job', 'finalize', 'me', 1)).toEqual({ state: 'new', result: null });
    expect(l.beginOp('op1', 'job', 'finalize', 'me', 2)).toEqual({ state: 'started', result: null });
    l.finishOp('op1', { path: 'ab/x.pdf' }, 3);
    expect(l.beginOp('op1', 'job', 'finalize', 'me', 4)).toEqual({ state: 'done', result: { path: 'ab/x.pdf' } });
    l.close();
  });

  it('counts objects once even when several jobs share one', () => {
    const l = new SqliteLedger(path);
    for (const id of ['a', 'b']) {
      const it = mk(`https://a.org/${id}`, id);
      l.plan(it, 0);
      l.claim(it.key, 'me', 0, 100);
      l.finish(it.key, 'me', done, 1);
    }
    expect(l.queries.counts()).toMatchObject({ objects: 1, bytesStored: 10, byState: { done: 2 } });
    l.close();
  });
});

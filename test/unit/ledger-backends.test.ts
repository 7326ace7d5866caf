import { mkdtemp, rm } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { PgLedger } from '../../src/ledger/postgres.js';
import { JOB_COLUMNS } from '../../src/ledger/postgres/schema.js';
import { SqliteLedger } from '../../src/ledger/sqlite.js';
import type { Ledger } from '../../src/ledger/types.js';
import type { Item } from '../../src/manifest/parse.js';
import { DONE, itemOf } from '../helpers/ledger.js';
import { freshDatabase, queryPg } from '../helpers/postgres.js';

const mk = itemOf;
const done = DONE;

const dirs: string[] = [];
afterAll(async () => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

/** Each backend as a test gets it: a function opening one more connection to one new ledger. */
const backends: [string, () => Promise<() => Ledger>][] = [
  [
    'SQLite',
    async () => {
      const dir = await mkdtemp(join(tmpdir(), 'docstokg-ledger-'));
      dirs.push(dir);
      return () => new SqliteLedger(join(dir, 'l.sqlite'));
    },
  ],
  [
    'PostgreSQL',
    async () => {
      const url = await freshDatabase();
      return () => new PgLedger(url);
    },
  ],
];

describe.each(backends)('the ledger contract on %s', (_name, make) => {
  let open: () => Ledger;
  beforeEach(async () => {
    open = await make();
  });

  it('plans once per run, reports duplicates, done and held jobs, and the skipped record', () => {
    const a = open();
    const item = mk('https://a.org/x.pdf', 'x');
    expect(a.plan(item, 1).kind).toBe('work');
    expect(a.plan(item, 1).kind).toBe('duplicate');
    expect(a.claim(item.key, 'me', 1, 1000)).toBe(true);
    expect(a.finish(item.key, 'me', done, 2)).toBe(true);
    a.close();
    const b = open();
    const again = b.plan(item, 3);
    expect(again.kind === 'done' && again.row.sha256).toBe(done.sha256);
    const other = mk('https://a.org/y.pdf', 'y');
    b.plan(other, 3);
    b.claim(other.key, 'them', 3, 1000);
    b.close();
    const c = open();
    expect(c.plan(other, 500).kind).toBe('held');
    const skipped = c.plan(mk('https://a.org/x.pdf', 'x'), 500, { skippedRecord: true });
    expect(skipped.kind === 'skipped' && JSON.parse(skipped.json)).toMatchObject({ id: 'x', status: 'skipped', sha256: done.sha256, source: 'm:1' });
    c.close();
  });

  it('answers a re-run from rows read ahead: the same records in manifest order or any other', () => {
    const a = open();
    const items = Array.from({ length: 300 }, (_, i) => mk(`https://a.org/r${i}.pdf`, `r${i}`));
    for (const [i, item] of items.entries()) {
      a.plan(item, 1);
      a.claim(item.key, 'me', 1, 1000);
      // every seventh failed, the rest done
      a.finish(item.key, 'me', i % 7 === 3 ? { ...done, state: 'failed', status: 'failed', reason: 'http_404', sha256: null, path: null } : { ...done, url: item.candidates[0]!.href }, 2);
    }
    a.close();
    const expected = (ledger: Ledger, order: Item[]): string[] => order.map((item) => {
      const p = ledger.plan(item, 10, { skippedRecord: true });
      return p.kind === 'skipped' ? JSON.parse(p.json).id : `${p.kind}:${item.id}`;
    });
    const inOrder = open();
    expect(expected(inOrder, items)).toEqual(items.map((item, i) => (i % 7 === 3 ? `failed:${item.id}` : item.id)));
    inOrder.close();
    // A job changed since (here reopened by a repair) is planned as it is now.
    const other = open();
    other.repair(items[150]!.key, 'done', 'pending', {}, 11);
    other.close();
    const shuffled = open();
    const order = [...items].reverse();
    expect(expected(shuffled, order)).toEqual(order.map((item) => (Number(item.id!.slice(1)) % 7 === 3 ? `failed:${item.id}` : item.id === 'r150' ? 'work:r150' : item.id)));
    shuffled.close();
  });

  it('guards every write after a claim by the lease owner, and expired leases can be taken over', () => {
    const l = open();
    const item = mk('https://a.org/z.pdf');
    l.plan(item, 0);
    expect(l.claim(item.key, 'p1', 0, 100)).toBe(true);
    expect(l.claim(item.key, 'p2', 50, 100)).toBe(false);
    expect(l.renew('p1', 90, 100)).toBe(1);
    expect(l.claim(item.key, 'p2', 150, 100)).toBe(false);
    expect(l.claim(item.key, 'p2', 191, 100)).toBe(true);
    expect(l.finish(item.key, 'p1', done, 200)).toBe(false);
    expect(l.release(item.key, 'p1', 200)).toBe(false);
    expect(l.holdsInTable(item.key, 'p2', 200)).toBe(true);
    expect(l.finish(item.key, 'p2', { ...done, state: 'failed', status: 'failed', reason: 'http_404' }, 200)).toBe(true);
    expect(l.claim(item.key, 'p3', 300, 100)).toBe(true);
    expect(l.finish(item.key, 'p3', done, 300)).toBe(true);
    expect(l.claim(item.key, 'p4', 400, 100)).toBe(false);
    expect(l.claim(item.key, 'p4', 400, 100, { reopen: true })).toBe(true);
    expect(l.repair(item.key, 'active', 'pending', {}, 500)).toBe(true);
    expect(l.job(item.key)?.state).toBe('pending');
    l.close();
  });

  it("takes a paced host for one request at a time, for every process on the ledger", () => {
    const a = open();
    const b = open();
    expect(a.takeHostSlot('h.org', 100, 1_000)).toBe(null);
    a.flush();
    expect(b.takeHostSlot('h.org', 100, 1_010)).toBe(1_100);
    expect(b.takeHostSlot('h.org', 100, 1_100)).toBe(null);
    b.flush();
    expect(a.takeHostSlot('h.org', 100, 1_150)).toBe(1_200);
    expect(a.takeHostSlot('other.org', 100, 1_150)).toBe(null);
    // A request that left late keeps the host taken for a spacing after it left.
    a.hostNotBefore('h.org', 1_500);
    a.flush();
    expect(b.takeHostSlot('h.org', 100, 1_300)).toBe(1_500);
    b.flush();
    a.saveHost({ host: 'h.org', breaker_state: 'open', open_until: 9, cooldown_until: 8, failures: 3, last_error: 'x' }, 7);
    a.flush();
    expect(b.host('h.org')).toMatchObject({ breaker_state: 'open', open_until: 9, failures: 3, updated_at: 7 });
    a.close();
    b.close();
  });

  it("keeps a host's permits and failures across processes; a dead owner's permits are freed", () => {
    const a = open();
    const b = open();
    const one = a.takeHostPermit('h.org', 'p1', 2, 1_000, 100);
    expect(one).not.toBeNull();
    a.flush();
    expect(b.takeHostPermit('h.org', 'p2', 2, 1_010, 100)).not.toBeNull();
    b.flush();
    expect(a.takeHostPermit('h.org', 'p1', 2, 1_020, 100)).toBeNull();
    // A permit expires with its owner's leases; renew extends them (b's expires, a's does not).
    a.renew('p1', 1_090, 100);
    a.flush();
    expect(b.takeHostPermit('h.org', 'p2', 2, 1_120, 100)).not.toBeNull();
    b.flush();
    expect(b.takeHostPermit('h.org', 'p2', 2, 1_130, 100)).toBeNull();
    b.flush();
    a.freeHostPermit(one!);
    a.flush();
    expect(b.takeHostPermit('h.org', 'p2', 2, 1_140, 100)).not.toBeNull();
    b.flush();
    // Owners of this machine whose process is gone (pid 2^22 + 1 exceeds any pid_max) lose theirs.
    expect(a.takeHostPermit('g.org', `${hostname()}:4194305:x`, 1, 0, 10_000)).not.toBeNull();
    expect(a.dropDeadPermits()).toBe(1);
    expect(a.takeHostPermit('g.org', 'p1', 1, 1, 10_000)).not.toBeNull();
    a.flush();
    expect(a.countHostFailure('h.org', true, 5)).toBe(1);
    a.flush();
    expect(b.countHostFailure('h.org', true, 6)).toBe(2);
    b.flush();
    expect(a.host('h.org')?.failures).toBe(2);
    expect(a.countHostFailure('h.org', false, 7)).toBe(0);
    a.close();
    b.close();
  });

  it('begins an op once and replays a done one; keeps parts, attempts, runs and invalid lines', async () => {
    const l = open();
    const item = mk('https://a.org/o.pdf', 'o');
    l.beginRun(['download'], 1);
    l.plan(item, 1);
    expect(l.beginOp('op1', item.key, 'finalize', 'p1', 1, 'd')).toEqual({ state: 'new', result: null });
    expect(l.beginOp('op1', item.key, 'finalize', 'p2', 2, 'd')).toEqual({ state: 'started', result: null });
    l.finishOp('op1', { path: 'ab/c.pdf' }, 3);
    expect(l.beginOp('op1', item.key, 'finalize', 'p3', 4, 'd')).toEqual({ state: 'done', result: { path: 'ab/c.pdf' } });
    l.recordOp('op2', item.key, 'stream', 'p1', 5, 'u', { size: 3 });
    expect(l.ops('done').map((o) => o.key).sort()).toEqual(['op1', 'op2']);
    expect(l.unrecordedFinalizes().map((o) => o.key)).toEqual(['op1']);
    l.savePart(item.key, { url: 'u', etag: '"e"', last_modified: null, total: 5_000_000_000 }, 6);
    expect(l.getPart(item.key)).toEqual({ url: 'u', etag: '"e"', last_modified: null, total: 5_000_000_000 });
    expect(l.partKeys()).toEqual([item.key]);
    l.dropPart(item.key);
    expect(l.getPart(item.key)).toBeUndefined();
    l.recordAttempt({ job_key: item.key, url: 'https://a.org/o.pdf', final_url: null, http_status: 503, bytes: 0, elapsed_ms: 4, error: 'http_503', resume_from: null, resume_decision: null, started_at: Date.now() });
    expect(l.invalidLine('m:9', 'bad', 7)).toBe(true);
    expect(l.invalidLine('m:9', 'bad', 8)).toBe(false);
    l.endRun({ downloaded: 0 }, 0, 9);
    await l.committed();
    expect(l.queries.recentFailures(0).get('a.org')).toBe(1);
    expect(l.queries.runs()).toMatchObject([{ id: l.runId, exit_code: 0 }]);
    expect(l.queries.invalidLines()).toMatchObject([{ source: 'm:9', message: 'bad' }]);
    expect(l.queries.counts()).toMatchObject({ byState: { pending: 1 }, invalidLines: 1 });
    expect([...l.queries.attempts()]).toMatchObject([{ job_key: item.key, item_id: 'o', http_status: 503 }]);
    l.close();
  });

  it('exports every job in pages, and counts an object shared by several jobs once', () => {
    const l = open();
    const keys: string[] = [];
    for (let i = 0; i < 1005; i += 1) {
      const item = mk(`https://a.org/${i}.pdf`);
      keys.push(item.key);
      l.plan(item, i < 3 ? 1 : 2);
    }
    for (const key of keys.slice(0, 3)) {
      l.claim(key, 'me', 3, 1000);
      l.finish(key, 'me', done, 4);
    }
    expect([...l.queries.jobs()].map((j) => j.key).sort()).toEqual([...keys].sort());
    expect([...l.jobsIn('done')]).toHaveLength(3);
    expect(l.doneKeysBySha(done.sha256!)).toHaveLength(3);
    expect(l.queries.counts()).toMatchObject({ objects: 1, bytesStored: 10, byState: { done: 3, pending: 1002 } });
    l.close();
  });

  it('keeps metadata answers in its HTTP cache, matched by Vary', () => {
    const l = open();
    const key = { origin: 'https://api.org', path: '/works/1', method: 'GET', headers: { accept: 'application/json' } };
    const value = { statusCode: 200, statusMessage: 'OK', headers: { 'content-type': 'application/json' }, vary: { accept: 'application/json' }, cachedAt: 1, staleAt: Date.now() + 60_000, deleteAt: Date.now() + 120_000 };
    const w = l.httpCache.createWriteStream(key, value)!;
    return new Promise<void>((resolve, reject) => {
      w.on('error', reject);
      w.end(Buffer.from('{"ok":true}'), () => {
        const got = l.httpCache.get(key) as { body: Buffer; statusCode: number };
        expect(got.statusCode).toBe(200);
        expect(Buffer.from(got.body).toString()).toBe('{"ok":true}');
        expect(l.httpCache.get({ ...key, headers: { accept: 'text/html' } })).toBeUndefined();
        l.close();
        resolve();
      });
    });
  });
});

describe('the PostgreSQL ledger', () => {
  it('reads every column of the jobs table into its rows but the planning order (JOB_COLUMNS)', async () => {
    const url = await freshDatabase();
    new PgLedger(url).close();
    const columns = await queryPg<{ column_name: string }>(url, "SELECT column_name FROM information_schema.columns WHERE table_name = 'jobs' ORDER BY ordinal_position");
    expect(columns.map((c) => c.column_name)).toEqual([...JOB_COLUMNS.split(', '), 'seq']);
  });
});

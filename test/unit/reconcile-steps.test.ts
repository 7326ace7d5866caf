import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteLedger } from '../../src/ledger/sqlite.js';
import { parseLine, type Item } from '../../src/manifest/parse.js';
import { Metrics } from '../../src/metrics.js';
import { objectPath, partPath } from '../../src/store/paths.js';
import { DirStore } from '../../src/store/dir-store.js';
import { reconcile } from '../../src/store/reconcile-steps.js';
import { samplePdf } from '../helpers/origin.js';

const mk = (url: string, id: string): Item => {
  const p = parseLine({ file: 'm', line: 1, text: JSON.stringify({ url, id }) });
  if (p.kind !== 'item') throw new Error('not an item');
  return p.item;
};

describe('reconcile steps on a real ledger and store', () => {
  let out: string;
  beforeEach(async () => {
    out = await mkdtemp(join(tmpdir(), 'docstokg-reconcile-'));
  });
  afterEach(() => rm(out, { recursive: true, force: true }));

  it('expires a dead lease, gives a moved object to its job, deletes orphan parts, and then agrees', async () => {
    const ledger = new SqliteLedger(join(out, 'docstokg.sqlite'));
    const moved = mk('https://a.org/moved.pdf', 'moved');
    const pending = mk('https://a.org/pending.pdf', 'pending');
    ledger.plan(moved, 1);
    ledger.plan(pending, 1);
    // A holder that died after moving the part into the store, before it recorded the job done.
    ledger.claim(moved.key, 'pid:999999999:dead', 1, 10);
    const body = samplePdf('moved', 5000);
    const sha = createHash('sha256').update(body).digest('hex');
    ledger.beginOp('op1', moved.key, 'finalize', 'pid:999999999:dead', 2, sha);
    await mkdir(dirname(objectPath(out, sha)), { recursive: true });
    await writeFile(objectPath(out, sha), body);
    // A part of a job still to do is kept; one no job knows is an orphan.
    await mkdir(dirname(partPath(out, pending.key)), { recursive: true });
    await writeFile(partPath(out, pending.key), body.subarray(0, 100));
    await mkdir(dirname(partPath(out, 'f'.repeat(64))), { recursive: true });
    await writeFile(partPath(out, 'f'.repeat(64)), 'orphan');
    ledger.flush();

    const dry = await reconcile({ ledger, store: new DirStore(out, false), apply: false, verify: false, now: 1000 });
    expect(dry.repaired).toBeGreaterThan(0);
    expect(ledger.job(moved.key)!.state).toBe('active');

    const done = await reconcile({ ledger, store: new DirStore(out, false), apply: true, verify: true, now: 1000 });
    const step = (name: string) => done.steps.find((s) => s.step === name)!;
    expect(step('expire-leases')).toMatchObject({ expired: 1 });
    expect(step('finish-abandoned-ops')).toMatchObject({ finished: 1 });
    expect(step('adopt-objects')).toMatchObject({ adopted: 1 });
    expect(step('sweep-parts')).toMatchObject({ kept: 1, deleted: 1 });
    expect(ledger.job(moved.key)).toMatchObject({ state: 'done', sha256: sha, bytes: body.length });
    expect(ledger.job(pending.key)!.state).toBe('pending');

    const again = await reconcile({ ledger, store: new DirStore(out, false), apply: false, verify: false, now: 2000 });
    expect(again.repaired).toBe(0);
    ledger.close();
    expect((await readdir(dirname(partPath(out, pending.key)))).length).toBeGreaterThan(0);
  });
});

describe('reconcile and a holder that may still be alive', () => {
  let out: string;
  beforeEach(async () => {
    out = await mkdtemp(join(tmpdir(), 'docstokg-reconcile-'));
  });
  afterEach(() => rm(out, { recursive: true, force: true }));

  it("keeps a dead holder's part for a resume, and unlinks the part of one whose lease only expired", async () => {
    const ledger = new SqliteLedger(join(out, 'docstokg.sqlite'));
    const dead = mk('https://a.org/dead.pdf', 'dead');
    const stopped = mk('https://a.org/stopped.pdf', 'stopped');
    ledger.plan(dead, 1);
    ledger.plan(stopped, 1);
    // A process of this host that no longer exists, and one that does (stopped, say) past its lease.
    ledger.claim(dead.key, `${hostname()}:999999999:gone`, 1, 10);
    ledger.claim(stopped.key, `${hostname()}:${process.ppid}:stopped`, 1, 10);
    for (const item of [dead, stopped]) {
      await mkdir(dirname(partPath(out, item.key)), { recursive: true });
      await writeFile(partPath(out, item.key), samplePdf(item.id, 3000));
      ledger.savePart(item.key, { url: item.candidates[0]!.href, etag: '"e"', last_modified: null, total: 9000 }, 2);
    }
    ledger.flush();
    const done = await reconcile({ ledger, store: new DirStore(out, false), apply: true, verify: false, now: 1000 });
    expect(done.steps.find((s) => s.step === 'expire-leases')).toMatchObject({ expired: 2, parts_dropped: 1 });
    expect(existsSync(partPath(out, dead.key))).toBe(true);
    expect(ledger.getPart(dead.key)).toBeDefined();
    // Its late writes now go to an unlinked file: the next holder starts a part of its own.
    expect(existsSync(partPath(out, stopped.key))).toBe(false);
    expect(ledger.getPart(stopped.key)).toBeUndefined();
    expect([ledger.job(dead.key)!.state, ledger.job(stopped.key)!.state]).toEqual(['pending', 'pending']);
    ledger.close();
  });
});

describe('Metrics', () => {
  it('counts the event stream into Prometheus text', () => {
    const m = new Metrics('run');
    m.sink('item_done', { status: 'downloaded', reason: null, bytes: 100 }, 0);
    m.sink('item_failed', { status: 'failed', reason: 'http_404' }, 0);
    m.sink('request', { host: 'a.org', status: 200 }, 0);
    m.sink('request', { host: 'a.org', status: null }, 0);
    m.sink('rate_limit_wait', { wait_ms: 1500 }, 0);
    const text = m.render(Date.now());
    expect(text).toContain('docstokg_items_total{status="downloaded",reason=""} 1');
    expect(text).toContain('docstokg_items_total{status="failed",reason="http_404"} 1');
    expect(text).toContain('docstokg_bytes_total 100');
    expect(text).toContain('docstokg_requests_total{host="a.org",class="2xx"} 1');
    expect(text).toContain('docstokg_requests_total{host="a.org",class="error"} 1');
    expect(text).toContain('docstokg_rate_limit_wait_seconds_total 1.500');
    expect(text).toMatch(/# TYPE docstokg_retries_total counter\ndocstokg_retries_total 0/);
  });
});

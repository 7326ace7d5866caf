import { link, readFile, readdir, stat, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { jobKey } from '../../src/manifest/parse.js';
import { jsonl, runCli, workspace, type Workspace } from '../helpers/cli.js';
import { queryLedger, writeLedger } from '../helpers/ledger.js';
import { samplePdf, sha256Hex, startOrigin, type Origin } from '../helpers/origin.js';
import { partPath } from '../../src/store/paths.js';
import { stagedNames } from '../helpers/staging.js';

/** Crash states built directly in a real store and ledger, then repaired by the real binary. */
describe('reconcile', () => {
  let origin: Origin;
  let ws: Workspace;
  let out: string;
  let manifest: string;
  const bodies = [0, 1, 2].map((i) => samplePdf(`reconcile ${i}`, 5000 + i));
  const key = (i: number) => jobKey(`r${i}`, [origin.url(`/r/${i}.pdf`)]);
  const objectOf = (i: number) => {
    const sha = sha256Hex(bodies[i]!);
    return { sha, rel: `${sha.slice(0, 2)}/${sha}.pdf`, abs: join(out, sha.slice(0, 2), `${sha}.pdf`) };
  };
  let n = 0;

  beforeAll(async () => {
    origin = await startOrigin();
    bodies.forEach((b, i) => origin.set(`/r/${i}.pdf`, { body: b, etag: `"e${i}"`, ranges: true }));
    ws = await workspace();
    manifest = await ws.file('r.jsonl', jsonl(bodies.map((_, i) => ({ id: `r${i}`, url: origin.url(`/r/${i}.pdf`) }))));
  });
  afterAll(async () => {
    await origin.close();
    await ws.cleanup();
  });
  beforeEach(async () => {
    out = join(ws.dir, `out${(n += 1)}`);
    const first = await runCli(['download', manifest, '-o', out, '--link-dir', join(out, 'links')]);
    expect(first.code).toBe(0);
  });

  const reconcileJson = async (...flags: string[]) => {
    const res = await runCli(['reconcile', '-o', out, '--json', ...flags]);
    const report = JSON.parse(res.stdout) as { steps: Record<string, number | string>[]; repaired: number; consistent: boolean };
    const step = (name: string) => report.steps.find((s) => s.step === name)!;
    return { code: res.code, report, step };
  };
  const state = (i: number) => queryLedger<{ state: string; sha256: string | null }>(out, 'SELECT state, sha256 FROM jobs WHERE key = ?', key(i))[0]!;
  const rerun = async () => {
    const before = origin.requests.length;
    const res = await runCli(['download', manifest, '-o', out, '--json', '--link-dir', join(out, 'links')]);
    return { res, requests: origin.requests.slice(before) };
  };

  it('finds nothing to do on a consistent store and exits 0', async () => {
    const { code, report } = await reconcileJson();
    expect(code).toBe(0);
    expect(report).toMatchObject({ repaired: 0, consistent: true });
    expect(report.steps.map((s) => s.step)).toEqual(['expire-leases', 'finish-abandoned-ops', 'adopt-objects', 'verify-objects', 'requeue-missing', 'sweep-parts']);
  });

  it('expires a stale lease so the job resumes instead of being stranded', async () => {
    // r0 crashed mid-transfer (its process on this machine is gone): leased, no object yet, a part on disk.
    writeLedger(out, "UPDATE jobs SET state = 'active', lease_owner = ?, lease_expires_at = 5, sha256 = NULL, path = NULL WHERE key = ?", `${hostname()}:999999999:x`, key(0));
    writeLedger(out, 'DELETE FROM ops WHERE job_key = ?', key(0));
    await unlink(objectOf(0).abs);
    await writeFile(partPath(out, key(0)), bodies[0]!.subarray(0, 1000));
    writeLedger(out, "UPDATE jobs SET state = 'active', lease_owner = 'elsewhere:1:y', lease_expires_at = ? WHERE key = ?", Date.now() + 600_000, key(1));
    const { code, step } = await reconcileJson();
    expect(step('expire-leases')).toMatchObject({ expired: 1, live: 1, parts_dropped: 0 });
    expect(code).toBe(0);
    expect(state(0).state).toBe('pending');
    expect(state(1).state).toBe('active');
    expect(await stagedNames(out)).toEqual([`${key(0)}.part`]);
  });

  it('adopts a stored object whose job never recorded the finish, without fetching it again', async () => {
    writeLedger(out, "UPDATE jobs SET state = 'pending', status = NULL, sha256 = NULL, path = NULL WHERE key = ?", key(0));
    const { step } = await reconcileJson();
    expect(step('adopt-objects')).toMatchObject({ adopted: 1 });
    expect(state(0)).toEqual({ state: 'done', sha256: objectOf(0).sha });
    const { res, requests } = await rerun();
    expect(requests).toHaveLength(0);
    expect(res.records.every((r) => r.status === 'skipped')).toBe(true);
  });

  it('finishes an interrupted finalize (object linked, part not yet removed) and re-links a view', async () => {
    const o = objectOf(1);
    writeLedger(out, "UPDATE jobs SET state = 'pending', status = NULL, sha256 = NULL, path = NULL WHERE key = ?", key(1));
    writeLedger(out, "UPDATE ops SET state = 'started', result = NULL WHERE job_key = ? AND kind = 'finalize'", key(1));
    await link(o.abs, partPath(out, key(1)));
    writeLedger(out, "UPDATE ops SET state = 'started', result = NULL WHERE job_key = ? AND kind = 'link'", key(2));
    await unlink(join(out, 'links', 'r2.pdf'));
    const { step, code } = await reconcileJson();
    expect(step('finish-abandoned-ops')).toMatchObject({ finished: 2 });
    expect(step('adopt-objects')).toMatchObject({ adopted: 1 });
    expect(code).toBe(0);
    expect(await stagedNames(out)).toEqual([]);
    expect((await readFile(join(out, 'links', 'r2.pdf'))).equals(bodies[2]!)).toBe(true);
  });

  it('re-queues a job whose object is missing; the next run fetches it once', async () => {
    await unlink(objectOf(2).abs);
    const { step } = await reconcileJson();
    expect(step('requeue-missing')).toMatchObject({ requeued: 1 });
    expect(state(2).state).toBe('pending');
    const { res, requests } = await rerun();
    expect(requests.map((r) => r.path)).toEqual(['/r/2.pdf']);
    expect(res.records.find((r) => r.id === 'r2')).toMatchObject({ status: 'downloaded', sha256: objectOf(2).sha });
  });

  it('keeps parts of pending jobs, deletes orphan parts and stray files', async () => {
    writeLedger(out, "UPDATE jobs SET state = 'pending', status = NULL, sha256 = NULL, path = NULL WHERE key = ?", key(0));
    writeLedger(out, "DELETE FROM ops WHERE job_key = ?", key(0));
    await unlink(objectOf(0).abs);
    await writeFile(partPath(out, key(0)), bodies[0]!.subarray(0, 100));
    await writeFile(partPath(out, 'f'.repeat(64)), 'orphan');
    await writeFile(join(out, '.staging', 'junk.tmp'), 'x');
    await writeFile(join(dirname(partPath(out, key(0))), 'junk.tmp'), 'x');
    await writeFile(partPath(out, key(1)), 'part of a done job');
    // where an earlier version kept a part, directly in .staging: moved to its place and kept
    writeLedger(out, "UPDATE jobs SET state = 'pending', status = NULL, sha256 = NULL, path = NULL WHERE key = ?", key(2));
    writeLedger(out, "DELETE FROM ops WHERE job_key = ?", key(2));
    await unlink(objectOf(2).abs);
    await writeFile(join(out, '.staging', `${key(2)}.part`), bodies[2]!.subarray(0, 100));
    const dry = await reconcileJson('--dry-run');
    expect(dry.step('sweep-parts')).toMatchObject({ kept: 2, deleted: 4 });
    expect(await stagedNames(out)).toHaveLength(6);
    const { step } = await reconcileJson();
    expect(step('sweep-parts')).toMatchObject({ kept: 2, deleted: 4 });
    expect(await stagedNames(out)).toEqual([`${key(0)}.part`, `${key(2)}.part`].sort());
    expect((await readFile(partPath(out, key(2)))).equals(bodies[2]!.subarray(0, 100))).toBe(true);
  });

  it('--verify quarantines a corrupt object and re-queues its job', async () => {
    const o = objectOf(1);
    await writeFile(o.abs, Buffer.concat([bodies[1]!.subarray(0, 100), Buffer.from('bit rot')]));
    const plain = await reconcileJson();
    expect(plain.step('verify-objects')).toMatchObject({ checked: 0 });
    const { step, code } = await reconcileJson('--verify');
    expect(step('verify-objects')).toMatchObject({ checked: 3, corrupt: 1, requeued: 1 });
    expect(code).toBe(0);
    expect((await readdir(join(out, '.quarantine'))).length).toBe(1);
    const { res } = await rerun();
    expect(res.records.find((r) => r.id === 'r1')).toMatchObject({ status: 'downloaded', sha256: o.sha });
    expect((await readFile(o.abs)).equals(bodies[1]!)).toBe(true);
  });

  it('--dry-run reports, changes nothing, and exits 1 when something needs repair', async () => {
    await unlink(objectOf(0).abs);
    const dry = await reconcileJson('--dry-run');
    expect(dry.code).toBe(1);
    expect(dry.report).toMatchObject({ consistent: false, repaired: 1 });
    expect(state(0).state).toBe('done');
    const human = await runCli(['reconcile', '-o', out]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/requeue-missing\s+checked 3, requeued 1/);
    expect(human.stdout).toMatch(/ledger and store agree/);
    expect(await stat(join(out, 'docstokg.sqlite'))).toBeTruthy();
  });
});

import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { beforeAll, describe, expect, it } from 'vitest';
import { rng } from '../fixtures/rng.js';
import { BIN, byId, runCli } from '../helpers/cli.js';
import { samplePdf } from '../helpers/origin.js';
import { freshDatabase, queryPg } from '../helpers/postgres.js';
import { stagedNames } from '../helpers/staging.js';
import { s3OriginAndWorkspace, sha256 } from '../helpers/s3.js';

/** A store in a bucket (s3rver on loopback): the same items, records and repairs as a directory. */
describe('an s3:// store', () => {
  const at = s3OriginAndWorkspace();
  const bodies = Array.from({ length: 20 }, (_, i) => samplePdf(`s3 ${i}`, 5_000 + i * 13_000));
  // Large enough for a multipart upload at the threshold the tests set (two parts of 16 MiB and 4).
  const large = samplePdf('s3 large', 20 * 1024 * 1024);
  /** writes per object key (the preflight's test object aside) */
  const objectWrites = (): number[] => [...at.s3.writes].filter(([k]) => /^pdfs\/[0-9a-f]{2}\//.test(k)).map(([, n]) => n);
  const env = (): Record<string, string> => ({ ...at.s3.env, DOCSTOKG_S3_MULTIPART_MIN_BYTES: String(8 * 1024 * 1024) });
  const args = (db: string, extra: string[] = []): string[] => ['-o', `s3://${at.s3.bucket}/pdfs`, '--s3-endpoint', at.s3.endpoint, '--db', join(at.ws.dir, db), ...extra];

  beforeAll(() => {
    bodies.forEach((body, i) => at.origin.set(`/${i}.pdf`, { body, ranges: true, etag: `"${i}"` }));
    at.origin.set('/copy.pdf', { body: bodies[3]!, ranges: true });
    at.origin.set('/large.pdf', { body: large, ranges: true, etag: '"large"' });
  });

  it('uploads every item once, verified, to <prefix>/<aa>/<sha256>.pdf; a re-run uploads nothing', async () => {
    const urls = [...bodies.map((_, i) => at.origin.url(`/${i}.pdf`)), at.origin.url('/copy.pdf'), at.origin.url('/large.pdf')];
    const manifest = await at.ws.file('at.s3.txt', `${urls.join('\n')}\n`);
    const res = await runCli(['download', manifest, ...args('a.sqlite'), '--json', '-q'], { env: env() });
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    const records = byId(res.records);
    for (const [i, body] of [...bodies, bodies[3]!, large].entries()) {
      const r = records.get(urls[i]!)!;
      expect(r).toMatchObject({ sha256: sha256(body), path: `${sha256(body).slice(0, 2)}/${sha256(body)}.pdf` });
      expect((await at.s3.get(`pdfs/${r.path as string}`))?.equals(body)).toBe(true);
    }
    // the same bytes twice: whichever is stored first is `downloaded`, the other `deduped`
    expect([records.get(at.origin.url('/3.pdf'))!.status, records.get(at.origin.url('/copy.pdf'))!.status].sort()).toEqual(['deduped', 'downloaded']);
    expect(objectWrites()).toEqual(Array(bodies.length + 1).fill(1));
    expect((await at.s3.keys('pdfs/')).length).toBe(bodies.length + 1);
    // Parts were staged beside the ledger, and are gone.
    const staging = join(at.ws.dir, 'docstokg-staging', '.staging');
    expect(readdirSync(staging).flatMap((d) => readdirSync(join(staging, d)))).toEqual([]);

    const again = await runCli(['download', manifest, ...args('a.sqlite'), '--json', '-q'], { env: env() });
    expect(again.records.every((r) => r.status === 'skipped')).toBe(true);
    expect(objectWrites().every((n) => n === 1)).toBe(true);
  });

  it('the same bytes under many URLs finishing together are uploaded once: one downloaded, the rest deduped', async () => {
    // s3rver ignores If-None-Match: only the process's own ordering keeps the second put away.
    const body = samplePdf('s3 twins', 300_000);
    const urls = Array.from({ length: 8 }, (_, i) => {
      at.origin.set(`/twin-${i}.pdf`, { body });
      return at.origin.url(`/twin-${i}.pdf`);
    });
    const manifest = await at.ws.file('s3-twins.txt', `${urls.join('\n')}\n`);
    // A prefix of its own: the other tests count the objects under pdfs/.
    const to = ['-o', `s3://${at.s3.bucket}/twins`, '--s3-endpoint', at.s3.endpoint, '--db', join(at.ws.dir, 'twins.sqlite')];
    const res = await runCli(['download', manifest, ...to, '--json', '-q', '-c', '8', '--per-host', '8'], { env: env() });
    expect(res.code).toBe(0);
    expect(res.records.map((r) => r.status).sort()).toEqual(['deduped', 'deduped', 'deduped', 'deduped', 'deduped', 'deduped', 'deduped', 'downloaded']);
    expect(at.s3.writes.get(`twins/${sha256(body).slice(0, 2)}/${sha256(body)}.pdf`)).toBe(1);
  });

  it('reconcile --verify re-hashes the objects in the bucket and requeues a corrupt one', async () => {
    const ok = await runCli(['reconcile', ...args('a.sqlite'), '--verify', '--json'], { env: env() });
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout).steps.find((s: { step: string }) => s.step === 'verify-objects')).toMatchObject({ checked: bodies.length + 1, corrupt: 0 });

    const victim = sha256(bodies[5]!);
    const client = new S3Client({ endpoint: at.s3.endpoint, forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
    await client.send(new PutObjectCommand({ Bucket: at.s3.bucket, Key: `pdfs/${victim.slice(0, 2)}/${victim}.pdf`, Body: 'not the bytes' }));
    client.destroy();
    const fixed = await runCli(['reconcile', ...args('a.sqlite'), '--verify', '--json'], { env: env() });
    expect(JSON.parse(fixed.stdout).steps.find((s: { step: string }) => s.step === 'verify-objects')).toMatchObject({ corrupt: 1, requeued: 1 });
    expect((await at.s3.keys('pdfs/.quarantine/')).length).toBe(1);
    const manifest = await at.ws.file('s3-one.txt', `${at.origin.url('/5.pdf')}\n`);
    const refetch = await runCli(['download', manifest, ...args('a.sqlite'), '--json', '-q'], { env: env() });
    expect(refetch.records[0]).toMatchObject({ status: 'downloaded', sha256: victim });
    expect((await at.s3.get(`pdfs/${victim.slice(0, 2)}/${victim}.pdf`))?.equals(bodies[5]!)).toBe(true);
  });

  it('refuses what cannot work before anything is fetched', async () => {
    const manifest = await at.ws.file('s3-two.txt', `${at.origin.url('/1.pdf')}\n`);
    const before = at.origin.requests.length;
    const noBucket = await runCli(['download', manifest, '-o', 's3://no-such-bucket/x', '--s3-endpoint', at.s3.endpoint, '--db', join(at.ws.dir, 'b.sqlite'), '--retries', '0'], { env: env() });
    expect(noBucket.code).toBe(3);
    expect(noBucket.stderr).toMatch(/s3:\/\/no-such-bucket\/x: a test write failed: NoSuchBucket/);
    const link = await runCli(['download', manifest, ...args('c.sqlite', ['--link-dir', join(at.ws.dir, 'links')])], { env: env() });
    expect(link.code).toBe(2);
    expect(link.stderr).toMatch(/--link-dir needs a local store/);
    const badUrl = await runCli(['download', manifest, '-o', 's3://B/x', '--db', join(at.ws.dir, 'd.sqlite')], { env: env() });
    expect(badUrl.code).toBe(2);
    expect(badUrl.stderr).toMatch(/not an S3 location/);
    const stagingForDir = await runCli(['download', manifest, '-o', join(at.ws.dir, 'dir-out'), '--staging', join(at.ws.dir, 'st')]);
    expect(stagingForDir.code).toBe(2);
    expect(stagingForDir.stderr).toMatch(/--staging applies to an s3:\/\/ --out only/);
    expect(at.origin.requests.length).toBe(before);
    expect(existsSync(join(at.ws.dir, 'links'))).toBe(false);
  });
});

/**
 * A proxy in front of s3rver that answers some PUTs itself: `refuse(method, key)` returns a status
 * and S3 error code to send instead of passing the request on, or null.
 */
async function faultyS3(target: string, refuse: (method: string, key: string) => [number, string] | null): Promise<{ endpoint: string; close: () => Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const fault = refuse(req.method ?? '', decodeURIComponent((req.url ?? '').split('?')[0]!));
    if (fault) {
      req.resume();
      req.on('end', () => res.writeHead(fault[0], { 'content-type': 'application/xml' }).end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${fault[1]}</Code><Message>injected</Message></Error>`));
      return;
    }
    const up = request(`${target}${req.url}`, { method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise((r) => server.close(() => r())) };
}

describe('an s3:// store that fails', () => {
  const at = s3OriginAndWorkspace();

  it('retries throttling and 5xx like a download, and stores every object once', async () => {
    const bodies = Array.from({ length: 6 }, (_, i) => samplePdf(`flaky s3 ${i}`, 20_000 + i));
    bodies.forEach((body, i) => at.origin.set(`/f/${i}.pdf`, { body }));
    const refused = new Map<string, number>();
    const proxy = await faultyS3(at.s3.endpoint, (method, key) => {
      if (method !== 'PUT' || !/\/flaky\/[0-9a-f]{2}\//.test(key)) return null;
      const n = (refused.get(key) ?? 0) + 1;
      refused.set(key, n);
      return n === 1 ? [503, 'SlowDown'] : n === 2 ? [500, 'InternalError'] : null;
    });
    const manifest = await at.ws.file('flaky.txt', bodies.map((_, i) => `${at.origin.url(`/f/${i}.pdf`)}\n`).join(''));
    const res = await runCli(['download', manifest, '-o', `s3://${at.s3.bucket}/flaky`, '--s3-endpoint', proxy.endpoint, '--db', join(at.ws.dir, 'flaky.sqlite'), '--json', '-q', '--retry-delay', '10'], { env: at.s3.env });
    await proxy.close();
    expect(res.code, res.stderr).toBe(0);
    expect(res.records.every((r) => r.status === 'downloaded')).toBe(true);
    expect([...refused.values()]).toEqual(Array(6).fill(3));
    for (const body of bodies) expect((await at.s3.get(`flaky/${sha256(body).slice(0, 2)}/${sha256(body)}.pdf`))?.equals(body)).toBe(true);
  });

  it('a bucket that refuses writes ends the run with exit 3 before any download', async () => {
    const proxy = await faultyS3(at.s3.endpoint, (method) => (method === 'PUT' ? [403, 'AccessDenied'] : null));
    const manifest = await at.ws.file('denied.txt', `${at.origin.url('/f/0.pdf')}\n`);
    const before = at.origin.requests.length;
    const res = await runCli(['download', manifest, '-o', `s3://${at.s3.bucket}/denied`, '--s3-endpoint', proxy.endpoint, '--db', join(at.ws.dir, 'denied.sqlite')], { env: at.s3.env });
    await proxy.close();
    expect(res.code).toBe(3);
    expect(res.stderr).toMatch(/store s3:\/\/corpus\/denied: a test write failed: AccessDenied \(HTTP 403\)/);
    expect(at.origin.requests.length).toBe(before);
  });
});

describe('an s3:// store shared by several processes', () => {
  const at = s3OriginAndWorkspace();

  it('three processes on one ledger and one bucket fetch each URL once and upload each object once', async () => {
    const N = 90;
    const bodies = Array.from({ length: N }, (_, i) => samplePdf(`mp3 ${i % 80}`, 30_000 + (i % 80)));
    bodies.forEach((body, i) => at.origin.set(`/mp/${i}.pdf`, { body, trickle: { chunk: 15_000, ms: 5 } }));
    const manifest = await at.ws.file('mp.txt', bodies.map((_, i) => `${at.origin.url(`/mp/${i}.pdf`)}\n`).join(''));
    const args = ['download', manifest, '-o', `s3://${at.s3.bucket}/mp`, '--s3-endpoint', at.s3.endpoint, '--db', join(at.ws.dir, 'mp.sqlite'), '--json', '--no-progress', '-c', '8'];
    const runs = await Promise.all([0, 1, 2].map(() => runCli(args, { env: at.s3.env })));
    for (const r of runs) expect(r.code, r.stderr).toBe(0);
    const perPath = new Map<string, number>();
    for (const r of at.origin.requests.filter((q) => q.path.startsWith('/mp/'))) perPath.set(r.path, (perPath.get(r.path) ?? 0) + 1);
    expect(perPath.size).toBe(N);
    expect([...perPath.values()].every((c) => c === 1)).toBe(true);
    const stored = runs.flatMap((r) => r.records.filter((x) => x.status === 'downloaded' || x.status === 'deduped'));
    expect(new Set(stored.map((r) => r.id)).size).toBe(N);
    // Ten bodies appear twice: 80 objects. Each of the others is written once; a shared one could
    // be written by two processes at the same moment (s3rver ignores If-None-Match; the same bytes
    // make that harmless), never more.
    const writes = new Map([...at.s3.writes].filter(([k]) => /^mp\/[0-9a-f]{2}\//.test(k)));
    expect(writes.size).toBe(80);
    for (const [i, body] of bodies.slice(10, 80).entries()) expect(writes.get(`mp/${sha256(body).slice(0, 2)}/${sha256(body)}.pdf`), `${i + 10}`).toBe(1);
    expect(Math.max(...writes.values())).toBeLessThanOrEqual(2);
    for (const [i, body] of bodies.entries()) expect((await at.s3.get(`mp/${sha256(body).slice(0, 2)}/${sha256(body)}.pdf`))?.equals(body), `${i}`).toBe(true);
  });

  it('three machines on one PostgreSQL ledger and one bucket, one killed with kill -9, upload each object once', async () => {
    const db = await freshDatabase();
    const N = 60;
    const bodies = Array.from({ length: N }, (_, i) => samplePdf(`pg3 ${i}`, 30_000 + i));
    bodies.forEach((body, i) => at.origin.set(`/pg/${i}.pdf`, { body, ranges: true, etag: `"pg${i}"`, trickle: { chunk: 10_000, ms: 20 } }));
    const manifest = await at.ws.file('pg.txt', bodies.map((_, i) => `${at.origin.url(`/pg/${i}.pdf`)}\n`).join(''));
    // Each process stages in a directory of its own, as on machines of their own.
    const store = ['-o', `s3://${at.s3.bucket}/pg`, '--s3-endpoint', at.s3.endpoint, '--db', db];
    const args = (k: number): string[] => ['download', manifest, ...store, '--staging', join(at.ws.dir, `machine${k}`), '--json', '--no-progress', '-c', '6', '--lease-ttl', '2'];
    let victim = 0;
    const runs = [0, 1, 2].map((k) => runCli(args(k), { env: at.s3.env, onSpawn: (pid) => (k === 0 ? (victim = pid) : undefined) }));
    for (let t = 0; at.origin.requests.filter((q) => q.path.startsWith('/pg/')).length < 15; t += 1) {
      if (t > 750) throw new Error('no progress');
      await new Promise((r) => setTimeout(r, 20));
    }
    process.kill(victim, 'SIGKILL');
    expect((await runs[0])!.signal).toBe('SIGKILL');
    for (const r of await Promise.all(runs.slice(1))) expect(r.code, r.stderr).toBe(0);
    const again = await runCli(args(0), { env: at.s3.env });
    expect(again.code, again.stderr).toBe(0);
    expect(await queryPg(db, 'SELECT state, COUNT(*)::int AS n FROM jobs GROUP BY state')).toEqual([{ state: 'done', n: N }]);
    const writes = new Map([...at.s3.writes].filter(([k]) => /^pg\/[0-9a-f]{2}\//.test(k)));
    expect(writes.size).toBe(N);
    expect([...writes.values()].every((n) => n === 1)).toBe(true);
    for (const [i, body] of bodies.entries()) expect((await at.s3.get(`pg/${sha256(body).slice(0, 2)}/${sha256(body)}.pdf`))?.equals(body), `${i}`).toBe(true);
    // The others may take the killed machine's jobs over (here at once, as they see its process is
    // gone; across machines once its leases expire) and stage them anew on their own machines: its
    // parts of those jobs are orphans in its own staging, which only `reconcile` on that machine
    // sweeps (README, Running a fleet). Nothing else may need repair.
    const reconcile = ['reconcile', ...store, '--staging', join(at.ws.dir, 'machine0'), '--json', '--verify'];
    const rec = await runCli(reconcile, { env: at.s3.env });
    const report = JSON.parse(rec.stdout) as { steps: { step: string; deleted?: number }[]; repaired: number; consistent: boolean };
    expect(report.consistent, rec.stderr).toBe(true);
    expect(report.repaired, rec.stdout).toBe(report.steps.find((s) => s.step === 'sweep-parts')!.deleted);
    expect(await stagedNames(join(at.ws.dir, 'machine0'))).toEqual([]);
    const second = await runCli(reconcile, { env: at.s3.env });
    expect(JSON.parse(second.stdout), second.stderr).toMatchObject({ repaired: 0, consistent: true });
  });
});

/** kill -9 while a run uploads, then reconcile and the same run: every object right, none uploaded twice. */
describe('an s3:// store across kill -9', () => {
  const CYCLES = Number(process.env.CRASH_CYCLES ?? 4);
  const SEED = Number(process.env.CRASH_SEED ?? Date.now() % 100_000);
  const at = s3OriginAndWorkspace();

  it(`ends every cycle with each object uploaded once (seed ${SEED})`, { timeout: 60_000 + CYCLES * 30_000 }, async () => {
    const random = rng(SEED);
    const env = { ...at.s3.env, DOCSTOKG_S3_MULTIPART_MIN_BYTES: String(8 * 1024 * 1024) };
    for (let cycle = 0; cycle < CYCLES; cycle += 1) {
      const slow = { chunk: 256 * 1024, ms: 10 };
      const bodies = [
        ...Array.from({ length: 12 }, (_, i) => samplePdf(`k${cycle} small ${i}`, 8_000 + i * 3_000)),
        ...Array.from({ length: 4 }, (_, i) => samplePdf(`k${cycle} mid ${i}`, 1024 * 1024 + i)),
        samplePdf(`k${cycle} large`, 18 * 1024 * 1024),
      ];
      bodies.forEach((body, i) => at.origin.set(`/k${cycle}/${i}.pdf`, (n) => ({ body, ranges: true, etag: `"k${cycle}-${i}"`, trickle: n === 1 && body.length > 100_000 ? slow : undefined })));
      const manifest = await at.ws.file(`k${cycle}.txt`, bodies.map((_, i) => `${at.origin.url(`/k${cycle}/${i}.pdf`)}\n`).join(''));
      const prefix = `k${cycle}`;
      const db = join(at.ws.dir, `k${cycle}.sqlite`);
      const args = ['download', manifest, '-o', `s3://${at.s3.bucket}/${prefix}`, '--s3-endpoint', at.s3.endpoint, '--db', db, '--retry-delay', '5', '-c', '6', '--no-progress', '-q'];
      const where = `cycle ${cycle} (seed ${SEED})`;

      const child = spawn(process.execPath, [BIN, ...args], { stdio: 'ignore', env: { ...process.env, ...env } });
      const closed = new Promise((r) => child.on('close', r));
      await Promise.race([closed, new Promise((r) => setTimeout(r, 200 + random() * 2500))]);
      child.kill('SIGKILL');
      await closed;
      if (existsSync(db)) {
        const rec = await runCli(['reconcile', '-o', `s3://${at.s3.bucket}/${prefix}`, '--s3-endpoint', at.s3.endpoint, '--db', db, '--json'], { env });
        expect(rec.code, `${where}: ${rec.stderr}${rec.stdout}`).toBe(0);
      }
      const rerun = await runCli([...args.filter((a) => a !== '-q'), '--json'], { env });
      expect(rerun.code, `${where}: ${rerun.stderr}`).toBe(0);
      for (const [i, body] of bodies.entries()) {
        const r = rerun.records.find((x) => x.id === at.origin.url(`/k${cycle}/${i}.pdf`))!;
        expect(r.sha256, `${where}: ${i}`).toBe(sha256(body));
        const got = await at.s3.get(`${prefix}/${r.path as string}`);
        expect(got?.equals(body), `${where}: ${i} bytes ${got?.length} of ${body.length} ${JSON.stringify(r)}`).toBe(true);
      }
      const keys = (await at.s3.keys(`${prefix}/`)).filter((k) => !k.includes('/.'));
      expect(keys.sort(), where).toEqual(bodies.map((b) => `${prefix}/${sha256(b).slice(0, 2)}/${sha256(b)}.pdf`).sort());
      const twice = [...at.s3.writes].filter(([k, n]) => k.startsWith(`${prefix}/`) && !k.includes('/.') && n > 1);
      expect(twice, `${where}: uploaded more than once`).toEqual([]);
      const final = await runCli(['reconcile', '-o', `s3://${at.s3.bucket}/${prefix}`, '--s3-endpoint', at.s3.endpoint, '--db', db, '--json', '--verify'], { env });
      expect(JSON.parse(final.stdout), where).toMatchObject({ repaired: 0, consistent: true });
      const staging = join(at.ws.dir, 'docstokg-staging', '.staging');
      expect(readdirSync(staging).flatMap((d) => readdirSync(join(staging, d))), where).toEqual([]);
    }
  });
});

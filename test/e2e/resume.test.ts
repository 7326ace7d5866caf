import { spawn } from 'node:child_process';
import { readFile, stat, writeFile, mkdir, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { streamOpKey } from '../../src/download/ops.js';
import { jobKey } from '../../src/manifest/parse.js';
import { BIN, jsonl, originAndWorkspace, runCli } from '../helpers/cli.js';
import { queryLedger, writeLedger } from '../helpers/ledger.js';
import { samplePdf, sha256Hex } from '../helpers/origin.js';
import { partPath } from '../../src/store/paths.js';

interface Attempt {
  url: string;
  http_status: number | null;
  bytes: number;
  error: string | null;
  resume_from: number;
  resume_decision: string;
}

describe('resume (RFC 7233) and revalidation (RFC 7232)', () => {
  const env = originAndWorkspace();
  const A = samplePdf('version A', 300_000);
  const B = samplePdf('version B', 300_000);
  const LM = 'Tue, 01 Sep 2026 10:00:00 GMT';


  let seq = 0;
  async function run(path: string, ...flags: string[]) {
    const id = `item-${path}`;
    const manifest = await env.ws.file(`m${(seq += 1)}.jsonl`, jsonl([{ id, url: env.origin.url(path) }]));
    // --retry-failed: a test's later run takes up the part its first, failed run left, at once
    // (without it a transient failure waits for its next-attempt time, SPEC §8).
    const res = await runCli(['download', manifest, '-o', env.ws.out, '--json', '--no-progress', '--retry-delay', '1', '--retry-failed', ...flags]);
    const key = jobKey(id, [env.origin.url(path)]);
    const attempts = queryLedger<Attempt>(env.ws.out, 'SELECT * FROM attempts WHERE job_key = ? ORDER BY id', key);
    return { res, rec: res.records[0]!, attempts, key, requests: env.origin.requests.filter((r) => r.path === path) };
  }

  async function stored(rec: Record<string, unknown>): Promise<Buffer> {
    return readFile(join(env.ws.out, rec.path as string));
  }

  it('continues after a drop mid-body with Range and If-Range (strong ETag), fetching only the rest', async () => {
    env.origin.set('/drop', (n) => ({ body: A, etag: '"a1"', ranges: true, truncateAfter: n === 1 ? 100_000 : undefined }));
    const { rec, attempts, requests } = await run('/drop');
    expect(rec).toMatchObject({ status: 'downloaded', sha256: sha256Hex(A), bytes: A.length, resumed_from: 100_000, attempts: 2 });
    expect((await stored(rec)).equals(A)).toBe(true);
    expect(requests[1]!.headers.range).toBe('bytes=100000-');
    expect(requests[1]!.headers['if-range']).toBe('"a1"');
    expect(attempts.map((a) => [a.resume_decision, a.http_status, a.bytes])).toEqual([
      ['fresh', 200, 100_000],
      ['range:etag', 206, A.length - 100_000],
    ]);
  });

  it('a small body records its stream when complete, and its validators as soon as its part outlives an attempt', async () => {
    const S = samplePdf('small version', 100_000);
    env.origin.set('/small-ok', () => ({ body: S, etag: '"s0"', ranges: true }));
    const ok = await run('/small-ok');
    expect(ok.rec).toMatchObject({ status: 'downloaded', sha256: sha256Hex(S) });
    const ops = queryLedger<{ state: string; result: string }>(env.ws.out, "SELECT state, result FROM ops WHERE job_key = ? AND kind = 'stream'", ok.key);
    expect(ops.map((o) => [o.state, JSON.parse(o.result)])).toEqual([['done', { sha256: sha256Hex(S), size: S.length, fsynced: false }]]);
    expect(queryLedger(env.ws.out, 'SELECT job_key FROM parts')).toEqual([]);

    const T = samplePdf('small version two', 100_000);
    env.origin.set('/small-drop', (n) => ({ body: T, etag: '"s1"', ranges: true, truncateAfter: n === 1 ? 40_000 : undefined }));
    const { rec, requests, attempts } = await run('/small-drop');
    expect(rec).toMatchObject({ status: 'downloaded', sha256: sha256Hex(T), resumed_from: 40_000, attempts: 2 });
    expect((await stored(rec)).equals(T)).toBe(true);
    expect(requests[1]!.headers.range).toBe('bytes=40000-');
    expect(requests[1]!.headers['if-range']).toBe('"s1"');
    expect(attempts.map((a) => a.resume_decision)).toEqual(['fresh', 'range:etag']);
  });

  it('restarts from the 200 body when the ETag changed between attempts', async () => {
    env.origin.set('/changed', (n) => (n === 1 ? { body: A, etag: '"v1"', ranges: true, truncateAfter: 120_000 } : { body: B, etag: '"v2"', ranges: true }));
    const { rec, attempts, requests } = await run('/changed');
    expect(rec).toMatchObject({ status: 'downloaded', sha256: sha256Hex(B), resumed_from: 0, etag: '"v2"' });
    expect((await stored(rec)).equals(B)).toBe(true);
    expect(requests[1]!.headers['if-range']).toBe('"v1"');
    expect(requests).toHaveLength(2);
    expect(attempts[1]).toMatchObject({ resume_decision: 'range:etag', http_status: 200, bytes: B.length });
  });

  it('restarts from the 200 body when the server ignores Range', async () => {
    env.origin.set('/norange', (n) => ({ body: A, etag: '"n1"', truncateAfter: n === 1 ? 50_000 : undefined }));
    const { rec, requests } = await run('/norange');
    expect(rec).toMatchObject({ sha256: sha256Hex(A), resumed_from: 0 });
    expect(requests[1]!.headers.range).toBe('bytes=50000-');
    expect(requests).toHaveLength(2);
  });

  it('uses Last-Modified in If-Range when there is no strong ETag (a weak one is never used)', async () => {
    env.origin.set('/lm', (n) => ({ body: A, etag: 'W/"weak"', lastModified: LM, ranges: true, truncateAfter: n === 1 ? 150_000 : undefined }));
    const { rec, requests } = await run('/lm');
    expect(rec).toMatchObject({ sha256: sha256Hex(A), resumed_from: 150_000 });
    expect(requests[1]!.headers['if-range']).toBe(LM);
  });

  it('without validators, checks an overlap of held bytes before appending', async () => {
    env.origin.set('/noval', (n) => ({ body: A, ranges: true, truncateAfter: n === 1 ? 200_000 : undefined }));
    const { rec, attempts, requests } = await run('/noval');
    const overlap = 64 * 1024;
    expect(rec).toMatchObject({ sha256: sha256Hex(A), resumed_from: 200_000 });
    expect(requests[1]!.headers.range).toBe(`bytes=${200_000 - overlap}-`);
    expect(requests[1]!.headers['if-range']).toBeUndefined();
    expect(attempts[1]).toMatchObject({ resume_decision: 'overlap:no-validators', bytes: A.length - 200_000 + overlap });
  });

  it('without validators, starts over when the overlap differs (content changed)', async () => {
    env.origin.set('/noval2', (n) => (n === 1 ? { body: A, ranges: true, truncateAfter: 200_000 } : { body: B, ranges: true }));
    const { rec, attempts, requests } = await run('/noval2');
    expect(rec).toMatchObject({ sha256: sha256Hex(B), resumed_from: 0 });
    expect((await stored(rec)).equals(B)).toBe(true);
    expect(requests).toHaveLength(3);
    expect(requests[2]!.headers.range).toBeUndefined();
    expect(attempts[1]!.resume_decision).toBe('overlap:no-validators>mismatch>fresh:refetch');
  });

  it('416 on a part that is already complete: verifies and finishes without a body', async () => {
    const A = samplePdf('full', 300_000);
    env.origin.set('/full', { body: A, etag: '"f1"', ranges: true, failFirst: { times: 1, status: 503 } });
    const first = await run('/full', '--retries', '0');
    expect(first.rec.reason).toBe('http_503');
    await writeFile(partPath(env.ws.out, first.key), A);
    writeLedger(env.ws.out, 'INSERT INTO parts (job_key, url, etag, last_modified, total, started_at) VALUES (?, ?, ?, NULL, ?, 0)', first.key, env.origin.url('/full'), '"f1"', A.length);
    const { rec, attempts, requests } = await run('/full');
    expect(requests.at(-1)!.headers.range).toBe(`bytes=${A.length}-`);
    expect(rec).toMatchObject({ status: 'downloaded', sha256: sha256Hex(A), resumed_from: A.length });
    expect(attempts.at(-1)).toMatchObject({ http_status: 416, bytes: 0 });
  });

  it('continues a part an earlier version left directly in .staging (before staging had subdirectories)', async () => {
    const A = samplePdf('legacy', 300_000);
    env.origin.set('/legacy', { body: A, etag: '"l1"', ranges: true, failFirst: { times: 1, status: 503 } });
    const first = await run('/legacy', '--retries', '0');
    expect(first.rec.reason).toBe('http_503');
    const flat = join(env.ws.out, '.staging', `${first.key}.part`);
    await writeFile(flat, A.subarray(0, 100_000));
    writeLedger(env.ws.out, 'INSERT INTO parts (job_key, url, etag, last_modified, total, started_at) VALUES (?, ?, ?, NULL, ?, 0)', first.key, env.origin.url('/legacy'), '"l1"', A.length);
    const { rec, requests } = await run('/legacy');
    expect(requests.at(-1)!.headers.range).toBe('bytes=100000-');
    expect(rec).toMatchObject({ status: 'downloaded', sha256: sha256Hex(A), resumed_from: 100_000 });
    expect((await stored(rec)).equals(A)).toBe(true);
    await expect(stat(flat)).rejects.toThrow();
  });

  it('a finished stream written without fsync is replayed only when its part still hashes to the recorded digest', async () => {
    for (const intact of [true, false]) {
      const A = samplePdf(`replay ${intact}`, 300_000);
      const path = `/replay-${intact}`;
      env.origin.set(path, { body: A, etag: '"r1"', ranges: true, failFirst: { times: 1, status: 503 } });
      const first = await run(path, '--retries', '0');
      expect(first.rec.reason).toBe('http_503');
      // What a --no-fsync run leaves when it dies between the stream and the finalize; after a
      // power cut the part may keep its size but not its bytes.
      const row = { url: env.origin.url(path), etag: '"r1"', last_modified: null, total: A.length };
      const bytes = intact ? A : Buffer.concat([A.subarray(0, 1000), Buffer.alloc(A.length - 1000)]);
      await writeFile(partPath(env.ws.out, first.key), bytes);
      writeLedger(env.ws.out, 'INSERT INTO parts (job_key, url, etag, last_modified, total, started_at) VALUES (?, ?, ?, NULL, ?, 0)', first.key, row.url, row.etag, row.total);
      writeLedger(env.ws.out, "INSERT INTO ops (key, job_key, kind, state, result, created_at, updated_at) VALUES (?, ?, 'stream', 'done', ?, 0, 0)", streamOpKey(first.key, row), first.key, JSON.stringify({ sha256: sha256Hex(A), size: A.length, fsynced: false }));
      const asked = first.requests.length;
      const { rec, requests, attempts } = await run(path);
      expect(rec, `intact ${intact}`).toMatchObject({ status: 'downloaded', sha256: sha256Hex(A) });
      expect((await stored(rec)).equals(A), `intact ${intact}`).toBe(true);
      if (intact) {
        expect(requests).toHaveLength(asked);
        expect(attempts.at(-1)!.resume_decision).toBe('replay:stream');
      } else {
        expect(requests).toHaveLength(asked + 1);
        expect(requests.at(-1)!.headers.range).toBeUndefined();
      }
    }
  });

  it('416 on a part longer than the representation: starts over', async () => {
    const A = samplePdf('shrunk', 300_000);
    env.origin.set('/shrunk', { body: A, etag: '"s1"', ranges: true, failFirst: { times: 1, status: 503 } });
    const first = await run('/shrunk', '--retries', '0');
    await writeFile(partPath(env.ws.out, first.key), Buffer.concat([A, Buffer.alloc(10)]));
    writeLedger(env.ws.out, 'INSERT INTO parts (job_key, url, etag, last_modified, total, started_at) VALUES (?, ?, ?, NULL, NULL, 0)', first.key, env.origin.url('/shrunk'), '"s1"');
    const { rec, requests } = await run('/shrunk');
    expect(rec).toMatchObject({ status: 'downloaded', sha256: sha256Hex(A), resumed_from: 0 });
    expect(requests.at(-1)!.headers.range).toBeUndefined();
  });

  it('after kill -9 of the real binary mid-file, the next run continues from the part', async () => {
    const big = samplePdf('killed', 2 * 1024 * 1024);
    env.origin.set('/slow', (n) => ({ body: big, etag: '"k1"', ranges: true, trickle: n === 1 ? { chunk: 16 * 1024, ms: 10 } : undefined }));
    const manifest = await env.ws.file('kill.jsonl', jsonl([{ id: 'killed', url: env.origin.url('/slow') }]));
    const part = partPath(env.ws.out, jobKey('killed', [env.origin.url('/slow')]));
    await mkdir(join(env.ws.out, '.staging'), { recursive: true });
    const child = spawn(process.execPath, [BIN, 'download', manifest, '-o', env.ws.out, '--no-progress', '-q'], { stdio: 'ignore' });
    for (let i = 0; i < 400; i += 1) {
      const size = await stat(part).then((s) => s.size, () => 0);
      if (size > 400_000) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    child.kill('SIGKILL');
    await new Promise((r) => child.on('close', r));
    const held = (await stat(part)).size;
    expect(held).toBeGreaterThan(400_000);
    expect(held).toBeLessThan(big.length);
    const res = await runCli(['download', manifest, '-o', env.ws.out, '--json', '--no-progress']);
    const requests = env.origin.requests.filter((r) => r.path === '/slow');
    expect(requests.at(-1)!.headers.range).toBe(`bytes=${held}-`);
    expect(res.records[0]).toMatchObject({ status: 'downloaded', sha256: sha256Hex(big), resumed_from: held });
    expect((await readFile(join(env.ws.out, res.records[0]!.path as string))).equals(big)).toBe(true);
    const attempts = queryLedger<Attempt>(env.ws.out, "SELECT * FROM attempts WHERE url = ? AND error IS NULL", env.origin.url('/slow'));
    expect(attempts.at(-1)!.bytes).toBe(big.length - held);
  });

  it('--revalidate: 304 is unchanged without a body; 200 records the new content; 412 retries without validators', async () => {
    const A = samplePdf('reval A', 300_000);
    const B = samplePdf('reval B', 300_000);
    let version: 'A' | 'B' = 'A';
    let refuse = false;
    env.origin.set('/reval', () => ({ body: version === 'A' ? A : B, etag: version === 'A' ? '"ra"' : '"rb"', lastModified: LM, ranges: true, preconditionFailed: refuse }));
    const first = await run('/reval');
    expect(first.rec).toMatchObject({ status: 'downloaded', sha256: sha256Hex(A) });
    const skip = await run('/reval');
    expect(skip.rec.status).toBe('skipped');
    const same = await run('/reval', '--revalidate');
    expect(same.rec).toMatchObject({ status: 'unchanged', sha256: sha256Hex(A), path: first.rec.path, http_status: 304 });
    expect(same.requests.at(-1)!.headers['if-none-match']).toBe('"ra"');
    expect(same.requests.at(-1)!.headers['if-modified-since']).toBe(LM);
    expect(same.res.code).toBe(0);
    version = 'B';
    const changed = await run('/reval', '--revalidate');
    expect(changed.rec).toMatchObject({ status: 'downloaded', sha256: sha256Hex(B), etag: '"rb"' });
    expect((await stored(changed.rec)).equals(B)).toBe(true);
    refuse = true;
    const before = env.origin.requests.length;
    const p412 = await run('/reval', '--revalidate');
    expect(env.origin.requests.length - before).toBe(2);
    expect(p412.requests.at(-1)!.headers['if-none-match']).toBeUndefined();
    expect(p412.rec).toMatchObject({ status: 'unchanged', sha256: sha256Hex(B) });
    const exported = await runCli(['export', '-o', env.ws.out]);
    expect(exported.records.find((r) => r.id === 'item-/reval')).toMatchObject({ state: 'done', sha256: sha256Hex(B) });
  });

  it('a body of unknown length goes on through each free-space check while it streams', async () => {
    // 40 MiB without Content-Length: two checks (every 16 MiB), each pausing the body until it answers.
    const body = samplePdf('unknown length', 40 * 1024 * 1024);
    env.origin.set('/chunked-ok', { body, chunked: true });
    const { rec, attempts } = await run('/chunked-ok', '--stall-timeout', '5');
    expect(rec).toMatchObject({ status: 'downloaded', sha256: sha256Hex(body), bytes: body.length });
    expect(attempts).toHaveLength(1);
  });

  it('quota: refused before streaming, and while streaming a body of unknown length', async () => {
    env.origin.set('/chunked-big', { body: samplePdf('quota', 40 * 1024 * 1024), chunked: true });
    const s = await statfs(env.ws.dir);
    const free = s.bavail * s.bsize;
    // Enough room to start, not enough for 40 MiB more: the guard must trip mid-stream.
    const { rec, attempts } = await run('/chunked-big', '--min-free', String(free - 8 * 1024 * 1024));
    expect(rec).toMatchObject({ status: 'failed', reason: 'quota', path: null });
    expect(attempts[0]!.bytes).toBeGreaterThan(0);
    expect(attempts[0]!.bytes).toBeLessThan(40 * 1024 * 1024);
    const key = jobKey('item-/chunked-big', [env.origin.url('/chunked-big')]);
    await expect(stat(partPath(env.ws.out, key))).rejects.toThrow();
  });
});

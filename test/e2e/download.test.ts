import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { byId, jsonl, runCli, workspace, type Workspace } from '../helpers/cli.js';
import { samplePdf, sha256Hex, startOrigin, type Origin } from '../helpers/origin.js';
import { stagedNames } from '../helpers/staging.js';

const N = 1000;

describe('download: 1,000 items end to end', () => {
  let origin: Origin;
  let ws: Workspace;
  const bodies = new Map<string, Buffer>();

  beforeAll(async () => {
    origin = await startOrigin();
    for (let i = 0; i < N; i += 1) {
      const body = samplePdf(`item-${i}`, 1024 + ((i * 37) % 4096));
      bodies.set(`W${i}`, body);
      origin.set(`/pdf/${i}.pdf`, { body });
    }
    ws = await workspace();
  });
  afterAll(async () => {
    await origin.close();
    await ws.cleanup();
  });

  it('stores every item at its SHA-256 path, then skips all of them with zero requests', async () => {
    const manifest = await ws.file('m.jsonl', jsonl(Array.from({ length: N }, (_, i) => ({ id: `https://openalex.org/W${i}`, url: origin.url(`/pdf/${i}.pdf`) }))));
    const first = await runCli(['download', manifest, '-o', ws.out, '--json', '--no-progress']);
    expect(first.code).toBe(0);
    expect(first.records).toHaveLength(N);
    for (const r of first.records) {
      const body = bodies.get(r.id as string)!;
      const sha = sha256Hex(body);
      expect(r).toMatchObject({ status: 'downloaded', reason: null, sha256: sha, bytes: body.length, path: `${sha.slice(0, 2)}/${sha}.pdf`, http_status: 200, attempts: 1, resumed_from: 0 });
      expect((await readFile(join(ws.out, r.path as string))).equals(body)).toBe(true);
    }
    expect(origin.requests).toHaveLength(N);
    expect(await stagedNames(ws.out)).toEqual([]);

    const before = origin.requests.length;
    const again = await runCli(['download', manifest, '-o', ws.out, '--json', '--no-progress']);
    expect(again.code).toBe(0);
    expect(again.records).toHaveLength(N);
    expect(again.records.every((r) => r.status === 'skipped' && typeof r.sha256 === 'string' && r.attempts === 0)).toBe(true);
    expect(origin.requests.length).toBe(before);
  });

  it('runs an item repeated in the manifest once and dedups identical content under another id', async () => {
    const same = samplePdf('shared', 3000);
    origin.set('/dup/a.pdf', { body: same });
    origin.set('/dup/b.pdf', { body: same });
    const manifest = await ws.file(
      'dup.jsonl',
      jsonl([
        { id: 'a', url: origin.url('/dup/a.pdf') },
        { id: 'a', url: origin.url('/dup/a.pdf#frag') },
        { id: 'b', url: origin.url('/dup/b.pdf') },
      ]),
    );
    const res = await runCli(['download', manifest, '-o', ws.out, '--json', '--no-progress', '-c', '1']);
    expect(res.code).toBe(0);
    expect(res.records).toHaveLength(2);
    const recs = byId(res.records);
    // Whichever is stored first is `downloaded`: the next transfer starts while an item finishes.
    expect([recs.get('a')!.status, recs.get('b')!.status].sort()).toEqual(['deduped', 'downloaded']);
    expect(recs.get('b')!.path).toBe(recs.get('a')!.path);
    expect(origin.requests.filter((r) => r.path === '/dup/a.pdf')).toHaveLength(1);
    const sha = sha256Hex(same);
    expect((await readdir(join(ws.out, sha.slice(0, 2)))).filter((f) => f.startsWith(sha))).toHaveLength(1);
  });

  it('stores a large file exactly, flushing it to disk while it downloads (fsync on)', async () => {
    // 40 MiB in small chunks: several early flushes run while writes are still queued.
    const big = samplePdf('large-durable', 40 * 1024 * 1024);
    origin.set('/big.pdf', { body: big, trickle: { chunk: 4 * 1024 * 1024, ms: 5 } });
    const manifest = await ws.file('big.jsonl', jsonl([{ id: 'big', url: origin.url('/big.pdf') }]));
    const res = await runCli(['download', manifest, '-o', ws.out, '--json', '--no-progress']);
    expect(res.code).toBe(0);
    expect(res.records[0]).toMatchObject({ status: 'downloaded', sha256: sha256Hex(big), bytes: big.length });
    expect(sha256Hex(await readFile(join(ws.out, res.records[0]!.path as string)))).toBe(sha256Hex(big));
  });

  it('never stores an HTML page served as application/pdf', async () => {
    origin.set('/login.pdf', { body: Buffer.from('<!doctype html><html><body>Please sign in</body></html>'.repeat(40)), headers: { 'content-type': 'application/pdf' } });
    const manifest = await ws.file('html.jsonl', jsonl([{ id: 'html', url: origin.url('/login.pdf') }]));
    const res = await runCli(['download', manifest, '-o', ws.out, '--json', '--no-progress']);
    expect(res.code).toBe(1);
    expect(res.records[0]).toMatchObject({ status: 'failed', reason: 'not_pdf', sha256: null, path: null });
    expect(origin.requests.filter((r) => r.path === '/login.pdf')).toHaveLength(1);
    expect(await stagedNames(ws.out)).toEqual([]);
  });

  it('exposes items in --link-dir under safe, unique names as hard links', async () => {
    const body = samplePdf('linked', 2000);
    origin.set('/link.pdf', { body });
    const links = join(ws.dir, 'links');
    const manifest = await ws.file('link.jsonl', jsonl([{ id: '../../etc/passwd', url: origin.url('/link.pdf') }, { doi: 'https://doi.org/10.1234/ABC', url: origin.url('/link.pdf?x=1') }]));
    const res = await runCli(['download', manifest, '-o', ws.out, '--json', '--no-progress', '--link-dir', links]);
    expect(res.code).toBe(0);
    const names = (await readdir(links)).sort();
    expect(names).toHaveLength(2);
    for (const n of names) {
      expect(n).not.toContain('/');
      expect(n.startsWith('.')).toBe(false);
      const [a, b] = await Promise.all([stat(join(links, n)), stat(join(ws.out, res.records[0]!.path as string))]);
      expect(a.ino).toBe(b.ino);
    }
    expect(byId(res.records).has('10.1234/abc')).toBe(true);
  });
});

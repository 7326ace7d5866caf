import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { jobKey } from '../../src/manifest/parse.js';
import { jsonl, originAndWorkspace, runCli } from '../helpers/cli.js';
import { queryLedger, writeLedger } from '../helpers/ledger.js';
import { samplePdf, sha256Hex } from '../helpers/origin.js';
import { stagedNames } from '../helpers/staging.js';

describe('several processes, signals and leases', () => {
  const env = originAndWorkspace();


  it('three processes started together on one manifest fetch each URL once', async () => {
    const N = 150;
    for (let i = 0; i < N; i += 1) env.origin.set(`/mp/${i}.pdf`, { body: samplePdf(`mp ${i}`, 40_000), trickle: { chunk: 20_000, ms: 5 } });
    const manifest = await env.ws.file('mp.jsonl', jsonl(Array.from({ length: N }, (_, i) => ({ id: `mp${i}`, url: env.origin.url(`/mp/${i}.pdf`) }))));
    const out = join(env.ws.dir, 'mp-out');
    const runs = await Promise.all([0, 1, 2].map(() => runCli(['download', manifest, '-o', out, '--json', '--no-progress', '-c', '8'])));
    for (const r of runs) expect(r.code, r.stderr).toBe(0);
    const fetched = env.origin.requests.filter((r) => r.path.startsWith('/mp/'));
    const perPath = new Map<string, number>();
    for (const r of fetched) perPath.set(r.path, (perPath.get(r.path) ?? 0) + 1);
    expect(perPath.size).toBe(N);
    expect([...perPath.values()].every((c) => c === 1)).toBe(true);
    const downloaded = runs.flatMap((r) => r.records.filter((x) => x.status === 'downloaded'));
    expect(downloaded).toHaveLength(N);
    expect(new Set(downloaded.map((r) => r.id)).size).toBe(N);
    const states = queryLedger<{ state: string; n: number }>(out, 'SELECT state, COUNT(*) AS n FROM jobs GROUP BY state');
    expect(states).toEqual([{ state: 'done', n: N }]);
    expect(await stagedNames(out)).toEqual([]);
  });

  it('SIGTERM stops gracefully with 143, a second signal exits at once, and a re-run completes', async () => {
    const body = samplePdf('term', 200_000);
    env.origin.set('/term.pdf', (n) => ({ body, etag: '"t"', ranges: true, stallAfter: n === 1 ? { bytes: 50_000, ms: 20_000 } : undefined }));
    const manifest = await env.ws.file('term.jsonl', jsonl([{ id: 'term', url: env.origin.url('/term.pdf') }]));
    const out = join(env.ws.dir, 'term-out');
    let pid = 0;
    const running = runCli(['download', manifest, '-o', out, '--json', '--no-progress'], { onSpawn: (p) => (pid = p) });
    await waitFor(() => env.origin.requests.some((r) => r.path === '/term.pdf'));
    await new Promise((r) => setTimeout(r, 200));
    process.kill(pid, 'SIGTERM');
    const res = await running;
    expect(res.code).toBe(143);
    expect(res.records[0]).toMatchObject({ status: 'failed', reason: 'interrupted' });
    expect(res.stderr).toMatch(/docstokg: .*1 interrupted/);
    expect(res.stderr).toMatch(/interrupted by SIGTERM: 1 item not finished/);
    expect(queryLedger<{ state: string; lease_owner: string | null }>(out, 'SELECT state, lease_owner FROM jobs')).toEqual([{ state: 'pending', lease_owner: null }]);

    let pid2 = 0;
    env.origin.set('/term.pdf', { body, etag: '"t"', ranges: true, stallAfter: { bytes: 0, ms: 20_000 } });
    const twice = runCli(['download', manifest, '-o', out, '--no-progress'], { onSpawn: (p) => (pid2 = p) });
    await waitFor(() => env.origin.requests.filter((r) => r.path === '/term.pdf').length >= 2);
    process.kill(pid2, 'SIGINT');
    process.kill(pid2, 'SIGINT');
    expect((await twice).code).toBe(130);

    env.origin.set('/term.pdf', { body, etag: '"t"', ranges: true });
    const again = await runCli(['download', manifest, '-o', out, '--json', '--no-progress']);
    expect(again.records[0]).toMatchObject({ status: 'downloaded', sha256: sha256Hex(body), resumed_from: 50_000 });
  });

  it('a worker that loses its lease stops the item with no side effects', async () => {
    const body = samplePdf('lost', 100_000);
    env.origin.set('/lost.pdf', { body, stallAfter: { bytes: 10_000, ms: 3_000 } });
    const manifest = await env.ws.file('lost.jsonl', jsonl([{ id: 'lost', url: env.origin.url('/lost.pdf') }]));
    const out = join(env.ws.dir, 'lost-out');
    const running = runCli(['download', manifest, '-o', out, '--json', '--no-progress', '--lease-ttl', '1']);
    await waitFor(() => env.origin.requests.some((r) => r.path === '/lost.pdf'));
    // Another holder takes the job over, as if this process had stalled past its lease.
    writeLedger(out, "UPDATE jobs SET lease_owner = 'thief:1:z', lease_expires_at = ? WHERE key = ?", Date.now() + 600_000, jobKey('lost', [env.origin.url('/lost.pdf')]));
    const res = await running;
    expect(res.records).toHaveLength(0);
    expect(res.stderr).toMatch(/1 held by another process/);
    expect(queryLedger<{ state: string; lease_owner: string }>(out, 'SELECT state, lease_owner FROM jobs')).toEqual([{ state: 'active', lease_owner: 'thief:1:z' }]);
    expect((await readdir(out)).filter((d) => /^[0-9a-f]{2}$/.test(d))).toEqual([]);
  });

  it('a lease lost between heartbeats is found before finalize: that item stops, the run goes on', async () => {
    const body = samplePdf('late', 100_000);
    env.origin.set('/late.pdf', { body, stallAfter: { bytes: 10_000, ms: 1_000 } });
    env.origin.set('/other.pdf', { body: samplePdf('other', 20_000) });
    const manifest = await env.ws.file('late.jsonl', jsonl([{ id: 'late', url: env.origin.url('/late.pdf') }, { id: 'other', url: env.origin.url('/other.pdf') }]));
    const out = join(env.ws.dir, 'late-out');
    // A long lease: no heartbeat comes before the transfer ends, so only finalize's own check can notice.
    const running = runCli(['download', manifest, '-o', out, '--json', '--no-progress', '--lease-ttl', '600']);
    await waitFor(() => env.origin.requests.some((r) => r.path === '/late.pdf'));
    const key = jobKey('late', [env.origin.url('/late.pdf')]);
    writeLedger(out, "UPDATE jobs SET lease_owner = 'thief:1:z', lease_expires_at = ? WHERE key = ?", Date.now() + 600_000, key);
    const res = await running;
    expect(res.code, res.stderr).toBe(0);
    expect(res.records.map((r) => [r.id, r.status])).toEqual([['other', 'downloaded']]);
    expect(res.stderr).toMatch(/1 held by another process/);
    expect(queryLedger<{ state: string; lease_owner: string }>(out, 'SELECT state, lease_owner FROM jobs WHERE key = ?', key)).toEqual([{ state: 'active', lease_owner: 'thief:1:z' }]);
    expect(existsSync(join(out, sha256Hex(body).slice(0, 2), `${sha256Hex(body)}.pdf`))).toBe(false);
  });
});

async function waitFor(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { jobKey } from '../../src/manifest/parse.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonl, runCli, workspace, type Workspace } from '../helpers/cli.js';
import { samplePdf, sha256Hex, startOrigin, type Origin } from '../helpers/origin.js';
import { stagedNames } from '../helpers/staging.js';

/** Every reason code the core pipeline emits, each against a real fault of the local origin. */
describe('reason codes', () => {
  let origin: Origin;
  let ws: Workspace;
  let silent: Server;
  const silentSockets = new Set<Socket>();
  const pdf = samplePdf('reasons', 8192);

  beforeAll(async () => {
    origin = await startOrigin({
      '/ok.pdf': { body: pdf },
      '/gone.pdf': { body: pdf, status: 410 },
      '/html.pdf': { body: Buffer.from('<html>'.padEnd(2000, ' ')), headers: { 'content-type': 'application/pdf' } },
      '/big.pdf': { body: samplePdf('big', 64 * 1024) },
      '/big-chunked.pdf': { body: samplePdf('bigc', 64 * 1024), chunked: true },
      '/short.pdf': { body: pdf, truncateAfter: 3000 },
      '/stall.pdf': { body: pdf, stallAfter: { bytes: 2000, ms: 5000 } },
      '/flaky.pdf': { body: samplePdf('flaky', 4000), failFirst: { times: 2, status: 503 } },
      '/down.pdf': { body: pdf, failFirst: { times: 100, status: 500 } },
      '/loop': { body: pdf, redirect: '/loop' },
      '/to-ftp': { body: pdf, redirect: 'ftp://example.org/x.pdf' },
      '/r1': { body: pdf, redirect: '/r2' },
      '/r2': { body: pdf, redirect: '/ok.pdf', redirectStatus: 301 },
    });
    // Accepts TCP and never answers: an https:// URL to it times out in the TLS handshake (connect phase).
    silent = createTcpServer((s) => {
      silentSockets.add(s);
      s.on('close', () => silentSockets.delete(s));
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    ws = await workspace();
  });
  afterAll(async () => {
    for (const s of silentSockets) s.destroy();
    silent.close();
    await origin.close();
    await ws.cleanup();
  });

  async function one(item: unknown, ...flags: string[]): Promise<Record<string, unknown>> {
    const manifest = await ws.file(`m-${Math.random().toString(36).slice(2)}.jsonl`, jsonl([item]));
    const res = await runCli(['download', manifest, '-o', ws.out, '--json', '--no-progress', '--retry-delay', '5', ...flags]);
    expect(res.records).toHaveLength(1);
    expect(res.code).toBe(res.records[0]!.status === 'failed' || res.records[0]!.status === 'invalid' ? 1 : 0);
    return res.records[0]!;
  }

  it('http_<code>: a 410 is not retried', async () => {
    expect(await one({ id: 'gone', url: origin.url('/gone.pdf') })).toMatchObject({ status: 'failed', reason: 'http_410', http_status: 410, attempts: 1 });
  });

  it('http_500 after --retries retries', async () => {
    expect(await one({ id: 'down', url: origin.url('/down.pdf') }, '--retries', '2')).toMatchObject({ reason: 'http_500', attempts: 3 });
  });

  it('retries a 503 and then succeeds', async () => {
    expect(await one({ id: 'flaky', url: origin.url('/flaky.pdf') })).toMatchObject({ status: 'downloaded', attempts: 3 });
  });

  it('not_pdf', async () => {
    expect(await one({ id: 'html', url: origin.url('/html.pdf') })).toMatchObject({ reason: 'not_pdf', attempts: 1 });
  });

  it('too_large from Content-Length and from the streamed body', async () => {
    expect(await one({ id: 'big', url: origin.url('/big.pdf') }, '--max-bytes', '32KiB')).toMatchObject({ reason: 'too_large', attempts: 1 });
    expect(await one({ id: 'bigc', url: origin.url('/big-chunked.pdf') }, '--max-bytes', '32KiB')).toMatchObject({ reason: 'too_large', attempts: 1 });
  });

  it('size_mismatch when the body is shorter than its Content-Length', async () => {
    expect(await one({ id: 'short', url: origin.url('/short.pdf') }, '--retries', '1')).toMatchObject({ reason: 'size_mismatch', attempts: 2 });
  });

  it('checksum_mismatch against the manifest sha256', async () => {
    expect(await one({ id: 'sum', url: origin.url('/ok.pdf'), sha256: '0'.repeat(64) })).toMatchObject({ reason: 'checksum_mismatch' });
    expect(await one({ id: 'sum2', url: origin.url('/ok.pdf'), sha256: sha256Hex(pdf) })).toMatchObject({ status: 'downloaded' });
  });

  it('stalled after --stall-timeout without a byte', async () => {
    expect(await one({ id: 'stall', url: origin.url('/stall.pdf') }, '--stall-timeout', '0.3', '--retries', '0')).toMatchObject({ reason: 'stalled', attempts: 1 });
  });

  it('timeout when the connection is not established in --connect-timeout', async () => {
    const port = (silent.address() as AddressInfo).port;
    expect(await one({ id: 'cto', url: `https://127.0.0.1:${port}/x.pdf` }, '--connect-timeout', '0.3', '--retries', '0')).toMatchObject({ reason: 'timeout' });
  });

  it('tls_error when the server does not speak TLS', async () => {
    expect(await one({ id: 'tls', url: `https://127.0.0.1:${origin.port}/ok.pdf` }, '--retries', '0')).toMatchObject({ reason: 'tls_error' });
  });

  it('connect_error when nothing listens', async () => {
    const s = createTcpServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as AddressInfo).port;
    await new Promise((r) => s.close(r));
    expect(await one({ id: 'refused', url: `http://127.0.0.1:${port}/x.pdf` }, '--retries', '0')).toMatchObject({ reason: 'connect_error', http_status: null });
  });

  it('dns_error for a name that does not resolve', async () => {
    expect(await one({ id: 'dns', url: 'http://no-such-host.invalid/x.pdf' }, '--retries', '0')).toMatchObject({ reason: 'dns_error' });
  });

  it('too_many_redirects, and redirects followed with final_url', async () => {
    expect(await one({ id: 'loop', url: origin.url('/loop') })).toMatchObject({ reason: 'too_many_redirects', attempts: 1 });
    expect(origin.requests.filter((r) => r.path === '/loop')).toHaveLength(11);
    expect(await one({ id: 'chain', url: origin.url('/r1') })).toMatchObject({ status: expect.stringMatching(/downloaded|deduped/), final_url: origin.url('/ok.pdf') });
  });

  it('blocked for non-http schemes in the manifest and in redirects', async () => {
    expect(await one({ id: 'file', url: 'file:///etc/passwd' })).toMatchObject({ status: 'failed', reason: 'blocked', attempts: 0 });
    expect(await one({ id: 'ftp', url: origin.url('/to-ftp') })).toMatchObject({ reason: 'blocked' });
  });

  it('no_url for an OpenAlex work without any PDF location', async () => {
    const work = { id: 'https://openalex.org/W42', best_oa_location: null, primary_location: { pdf_url: null }, locations: [], open_access: { oa_url: null } };
    expect(await one(work)).toMatchObject({ id: 'W42', status: 'failed', reason: 'no_url' });
  });

  it('invalid_line names file and line, and the other lines still run', async () => {
    const manifest = await ws.file('mixed.jsonl', jsonl([{ id: 'fine', url: origin.url('/ok.pdf') }, '{"url": 42}', 'not a url at all']));
    const res = await runCli(['download', manifest, '-o', ws.out, '--json', '--no-progress']);
    expect(res.code).toBe(1);
    const invalid = res.records.filter((r) => r.status === 'invalid');
    expect(invalid.map((r) => r.source)).toEqual([`${manifest}:2`, `${manifest}:3`]);
    expect(invalid.every((r) => r.reason === 'invalid_line')).toBe(true);
    expect(res.records.find((r) => r.id === 'fine')?.status).toMatch(/downloaded|deduped/);
  });

  it('quota when free space would fall below --min-free', async () => {
    expect(await one({ id: 'quota', url: origin.url('/ok.pdf?q') }, '--min-free', '1000000GiB')).toMatchObject({ reason: 'quota', attempts: 1 });
  });

  it('falls back to the next candidate URL in order', async () => {
    const rec = await one({ id: 'fallback', urls: [origin.url('/gone.pdf'), origin.url('/html.pdf'), origin.url('/ok.pdf?fb')] });
    expect(rec).toMatchObject({ status: expect.stringMatching(/downloaded|deduped/), url: origin.url('/ok.pdf?fb'), attempts: 3 });
  });

  it('interrupted on SIGINT: exit 130, the part kept, the job back to pending', async () => {
    const manifest = await ws.file('int.jsonl', jsonl([{ id: 'int', url: origin.url('/stall.pdf') }]));
    let pid = 0;
    const started = runCli(['download', manifest, '-o', ws.out, '--json', '--no-progress'], { onSpawn: (p) => (pid = p) });
    for (let i = 0; i < 100 && !origin.requests.some((r) => r.path === '/stall.pdf' && r.at > Date.now() - 2000); i += 1) {
      await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, 200));
    process.kill(pid, 'SIGINT');
    const res = await started;
    expect(res.code).toBe(130);
    expect(res.records[0]).toMatchObject({ status: 'failed', reason: 'interrupted' });
    expect(await stagedNames(ws.out)).toContain(`${jobKey('int', [origin.url('/stall.pdf')])}.part`);
    const exported = await runCli(['export', '-o', ws.out]);
    expect(exported.records.find((r) => r.id === 'int')).toMatchObject({ state: 'pending' });
  });
});

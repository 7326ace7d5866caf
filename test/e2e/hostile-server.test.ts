import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { brotliCompressSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonl, runCli, workspace, type Workspace } from '../helpers/cli.js';
import { samplePdf, sha256Hex, startOrigin, type Origin } from '../helpers/origin.js';
import { startRawServer, type RawServer } from '../helpers/raw-server.js';
import { stagedNames } from '../helpers/staging.js';

const pdf = samplePdf('hostile-server', 64 * 1024);
const packed = samplePdf('hostile-compressed', 64 * 1024);
const big = samplePdf('hostile-resets', 512 * 1024);

function head(status: string, headers: Record<string, string | number>): string {
  return `HTTP/1.1 ${status}\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
}

/** Raw answers keyed by path; each writes what a broken or hostile server would. */
const RAW: Record<string, (s: Socket) => void> = {
  '/longer-than-declared': (s) => s.end(Buffer.concat([Buffer.from(head('200 OK', { 'content-type': 'application/pdf', 'content-length': pdf.length })), pdf, Buffer.from('TRAILING GARBAGE '.repeat(1000))])),
  '/huge-headers': (s) => s.end(head('200 OK', { 'content-type': 'application/pdf', 'x-junk': 'x'.repeat(200 * 1024), 'content-length': 5 }) + '%PDF-'),
  '/endless-headers': (s) => {
    s.write('HTTP/1.1 200 OK\r\nx-slow: ');
    const t = setInterval(() => (s.destroyed ? clearInterval(t) : s.write('a')), 50);
    s.on('close', () => clearInterval(t));
  },
  '/not-http': (s) => s.end('SSH-2.0-OpenSSH_9.6\r\n\r\n'),
  '/bad-length': (s) => s.end(head('200 OK', { 'content-length': 'twelve' }) + '%PDF-1.4 ...'),
  '/reset-in-status': (s) => s.write('HTTP/1.1 20', () => s.resetAndDestroy()),
  '/reset-in-headers': (s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\ncontent-ty', () => s.resetAndDestroy()),
};

describe('hostile servers', () => {
  let origin: Origin;
  let raw: RawServer;
  let ws: Workspace;

  beforeAll(async () => {
    const bomb = Buffer.concat([Buffer.from('%PDF-1.4\n'), Buffer.alloc(64 * 1024 * 1024)]);
    origin = await startOrigin({
      '/gzip.pdf': { body: gzipSync(packed), headers: { 'content-encoding': 'gzip' } },
      '/br.pdf': { body: brotliCompressSync(packed), headers: { 'content-encoding': 'br' } },
      '/bomb.pdf': { body: gzipSync(bomb), headers: { 'content-encoding': 'gzip' } },
      '/zstd.pdf': { body: pdf, headers: { 'content-encoding': 'zstd' } },
      '/short.pdf': { body: pdf, truncateAfter: 1000 },
      '/trickle.pdf': { body: pdf, trickle: { chunk: 64, ms: 100 } },
      '/to-file': { body: pdf, redirect: 'file:///etc/passwd' },
      '/to-js': { body: pdf, redirect: 'javascript:alert(1)' },
      '/to-data': { body: pdf, redirect: 'data:application/pdf;base64,JVBERi0xLjQK' },
      '/to-garbage': { body: pdf, redirect: 'http://[::1' },
      '/loop-a': { body: pdf, redirect: '/loop-b' },
      '/loop-b': { body: pdf, redirect: '/loop-a' },
    });
    raw = await startRawServer((s, path) => (RAW[path] ?? ((x: Socket) => x.end(head('404 Not Found', { 'content-length': 0 }))))(s));
    ws = await workspace();
  });
  afterAll(async () => {
    await origin.close();
    await raw.close();
    await ws.cleanup();
  });

  async function one(url: string, ...flags: string[]): Promise<Record<string, unknown>> {
    const manifest = await ws.file(`m-${Math.random().toString(36).slice(2)}.jsonl`, jsonl([{ url }]));
    const res = await runCli(['download', manifest, '-o', ws.out, '--json', '--no-progress', '--retries', '0', ...flags]);
    expect(res.stderr).not.toMatch(/\n\s+at |internal error/);
    expect(res.records).toHaveLength(1);
    expect(res.code).toBe(res.records[0]!.status === 'failed' ? 1 : 0);
    return res.records[0]!;
  }

  it('a body longer than its Content-Length: exactly the declared bytes are kept', async () => {
    expect(await one(raw.url('/longer-than-declared'))).toMatchObject({ status: 'downloaded', sha256: sha256Hex(pdf), bytes: pdf.length });
  });

  it('a Content-Length larger than what is sent: size_mismatch, nothing stored', async () => {
    expect(await one(origin.url('/short.pdf'))).toMatchObject({ status: 'failed', reason: 'size_mismatch', sha256: null });
  });

  it('compressed bodies despite Accept-Encoding: identity are decoded (gzip, br) and verified', async () => {
    expect(await one(origin.url('/gzip.pdf'))).toMatchObject({ status: 'downloaded', sha256: sha256Hex(packed), bytes: packed.length });
    expect(await one(origin.url('/br.pdf'))).toMatchObject({ status: 'deduped', sha256: sha256Hex(packed) });
    expect(origin.requests.find((r) => r.path === '/gzip.pdf')!.headers['accept-encoding']).toBe('identity');
  });

  it('a decompression bomb stops at --max-bytes (too_large) and leaves no part', async () => {
    const out = join(ws.dir, 'bomb-out');
    expect(await one(origin.url('/bomb.pdf'), '--max-bytes', '1MiB', '-o', out)).toMatchObject({ status: 'failed', reason: 'too_large' });
    expect(await stagedNames(out)).toEqual([]);
  });

  it('an unsupported Content-Encoding is not_pdf', async () => {
    expect(await one(origin.url('/zstd.pdf'))).toMatchObject({ status: 'failed', reason: 'not_pdf' });
  });

  it('redirects to file:, javascript:, data: or an unparseable location are blocked', async () => {
    for (const path of ['/to-file', '/to-js', '/to-data', '/to-garbage']) {
      expect(await one(origin.url(path)), path).toMatchObject({ status: 'failed', reason: 'blocked' });
    }
  });

  it('a redirect loop ends as too_many_redirects', async () => {
    expect(await one(origin.url('/loop-a'))).toMatchObject({ status: 'failed', reason: 'too_many_redirects' });
  });

  it('huge headers are too_large; endless headers are stalled', async () => {
    expect(await one(raw.url('/huge-headers'))).toMatchObject({ status: 'failed', reason: 'too_large' });
    expect(await one(raw.url('/endless-headers'), '--stall-timeout', '1')).toMatchObject({ status: 'failed', reason: 'stalled' });
  });

  it('a trickle under --min-speed is stalled although bytes keep coming', async () => {
    const r = await one(origin.url('/trickle.pdf'), '--stall-timeout', '1', '--min-speed', '4KiB');
    expect(r).toMatchObject({ status: 'failed', reason: 'stalled' });
    expect(Number(r.elapsed_ms)).toBeLessThan(10_000);
  });

  it('non-HTTP answers, broken framing and resets inside the status line or headers are connect errors', async () => {
    for (const path of ['/not-http', '/bad-length', '/reset-in-status', '/reset-in-headers']) {
      expect(await one(raw.url(path)), path).toMatchObject({ status: 'failed', reason: 'connect_error', sha256: null });
    }
  });

  it('connection resets at arbitrary body offsets: the retries resume and the bytes end exact', async () => {
    const offsets = [0, 1, 5, 1023, 1024, 1025, 65_536, 300_001, big.length - 1];
    for (const [i, cut] of offsets.entries()) {
      // Reset on the first two requests at this offset (of what that response sends), then serve.
      origin.set(`/reset-${i}.pdf`, (n) => ({ body: big, etag: '"v1"', ranges: true, ...(n <= 2 ? { resetAfter: cut } : {}) }));
    }
    const manifest = await ws.file('resets.jsonl', jsonl(offsets.map((_, i) => ({ id: `reset-${i}`, url: origin.url(`/reset-${i}.pdf`) }))));
    // Eighteen resets in a row would open the host's breaker (fail_max 5): this test is about resume.
    const breakers = await ws.file('lenient.yaml', 'defaults: {fail_max: 1000, reset_timeout_s: 1}\n');
    // Its own store and ledger: the failures above left this host's breaker open in the shared one.
    const out = join(ws.dir, 'resets-out');
    const res = await runCli(['download', manifest, '-o', out, '--json', '--no-progress', '--retries', '3', '--retry-delay', '5', '--breakers', breakers]);
    expect(res.records.filter((r) => r.status !== 'downloaded' && r.status !== 'deduped')).toEqual([]);
    expect(res.code).toBe(0);
    for (const r of res.records) {
      expect(r).toMatchObject({ sha256: sha256Hex(big) });
      expect(sha256Hex(await readFile(join(out, r.path as string)))).toBe(sha256Hex(big));
    }
    expect(Number(res.records.find((r) => r.id === 'reset-7')!.resumed_from)).toBeGreaterThan(0);
    expect(existsSync(join(out, '.staging'))).toBe(true);
    expect(await stagedNames(out)).toEqual([]);
  });
});

import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { constants, createSecureServer, type Http2SecureServer } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { byId, runCli, workspace, type Workspace } from '../helpers/cli.js';
import { samplePdf, sha256Hex } from '../helpers/origin.js';

/**
 * An HTTPS origin offering HTTP/2 beside HTTP/1.1 (ALPN), as most PDF hosts do: what each request
 * spoke, over how many TLS sessions, and one body cut mid-stream (a stream reset) the first time.
 */
describe('HTTP/2', () => {
  let ws: Workspace;
  let server: Http2SecureServer;
  let base: string;
  let caFile: string;
  const bodies = Array.from({ length: 24 }, (_, i) => samplePdf(`h2 ${i}`, 20_000 + i * 9_000));
  const seen: { path: string; version: string; range: string | undefined }[] = [];
  let sessions = 0;
  let cut = false;

  beforeAll(async () => {
    ws = await workspace();
    const key = join(ws.dir, 'key.pem');
    caFile = join(ws.dir, 'cert.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', caFile, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    server = createSecureServer({ key: await readFile(key), cert: await readFile(caFile), allowHTTP1: true }, (req, res) => {
      const i = Number(/^\/(\d+)\.pdf$/.exec(req.url)?.[1]);
      const body = bodies[i]!;
      seen.push({ path: req.url, version: req.httpVersion, range: req.headers.range });
      const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
      const headers = { 'content-type': 'application/pdf', etag: `"v${i}"`, 'accept-ranges': 'bytes' };
      if (range) {
        const from = Number(range[1]);
        res.writeHead(206, { ...headers, 'content-length': body.length - from, 'content-range': `bytes ${from}-${body.length - 1}/${body.length}` }).end(body.subarray(from));
        return;
      }
      res.writeHead(200, { ...headers, 'content-length': body.length });
      if (i === 23 && !cut && req.httpVersion === '2.0') {
        cut = true;
        res.write(body.subarray(0, 100_000), () => setTimeout(() => res.stream.close(constants.NGHTTP2_INTERNAL_ERROR), 50));
        return;
      }
      res.end(body);
    });
    server.on('secureConnection', () => (sessions += 1));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    await ws.cleanup();
  });

  const manifest = () => ws.file('h2.txt', bodies.map((_, i) => `${base}/${i}.pdf\n`).join(''));

  it('--http2 speaks HTTP/2 where the server offers it: every body whole, a cut stream resumed with a range', async () => {
    seen.length = 0;
    sessions = 0;
    const res = await runCli(['download', await manifest(), '-o', join(ws.dir, 'a'), '--json', '-q', '--ca-file', caFile, '--http2', '--retry-delay', '10', '-c', '8', '--per-host', '8']);
    expect(res.code).toBe(0);
    const records = byId(res.records);
    for (const [i, body] of bodies.entries()) {
      const r = records.get(`${base}/${i}.pdf`)!;
      expect(r).toMatchObject({ status: 'downloaded', sha256: sha256Hex(body) });
      expect((await readFile(join(ws.dir, 'a', r.path as string))).equals(body)).toBe(true);
    }
    expect(new Set(seen.map((s) => s.version))).toEqual(new Set(['2.0']));
    expect(cut).toBe(true);
    expect(records.get(`${base}/23.pdf`)).toMatchObject({ resumed_from: expect.any(Number) });
    expect(records.get(`${base}/23.pdf`)!.resumed_from).toBeGreaterThan(0);
    expect(seen.filter((s) => s.path === '/23.pdf').map((s) => s.range !== undefined)).toEqual([false, true]);
    // Requests share connections: 24 items in flight 8 at a time never need 24 handshakes.
    expect(sessions).toBeLessThanOrEqual(8);
  });

  it('by default keeps to HTTP/1.1', async () => {
    seen.length = 0;
    const res = await runCli(['download', await manifest(), '-o', join(ws.dir, 'b'), '--json', '-q', '--ca-file', caFile]);
    expect(res.code).toBe(0);
    expect(res.records.every((r) => r.status === 'downloaded')).toBe(true);
    expect(new Set(seen.map((s) => s.version))).toEqual(new Set(['1.1']));
  });

  it('--per-host bounds the streams in flight to a host, however few its connections', async () => {
    // A second origin, HTTP/2 only, whose answers wait 150 ms, counting the streams open at once.
    let inFlight = 0;
    let most = 0;
    const versions = new Set<string>();
    const slow = createSecureServer({ key: await readFile(join(ws.dir, 'key.pem')), cert: await readFile(caFile) }, (req, res) => {
      const body = bodies[Number(/^\/(\d+)\.pdf$/.exec(req.url)?.[1])]!;
      versions.add(req.httpVersion);
      inFlight += 1;
      most = Math.max(most, inFlight);
      setTimeout(() => {
        inFlight -= 1;
        res.writeHead(200, { 'content-type': 'application/pdf', 'content-length': body.length }).end(body);
      }, 150);
    });
    await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve));
    try {
      const origin = `https://127.0.0.1:${(slow.address() as AddressInfo).port}`;
      const list = await ws.file('slow.txt', bodies.slice(0, 12).map((_, i) => `${origin}/${i}.pdf\n`).join(''));
      const res = await runCli(['download', list, '-o', join(ws.dir, 'c'), '--json', '-q', '--ca-file', caFile, '--http2', '-c', '8', '--per-host', '3']);
      expect(res.code).toBe(0);
      expect(res.records.filter((r) => r.status === 'downloaded')).toHaveLength(12);
      expect(versions).toEqual(new Set(['2.0']));
      expect(most).toBe(3);
    } finally {
      await new Promise((resolve) => slow.close(resolve));
    }
  });
});

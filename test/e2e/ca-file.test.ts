import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { rootCertificates, type TLSSocket } from 'node:tls';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, workspace, type Workspace } from '../helpers/cli.js';
import { samplePdf } from '../helpers/origin.js';

/** An HTTPS origin whose certificate no public CA signed: a self-signed one for 127.0.0.1, made by openssl. */
describe('--ca-file', () => {
  let ws: Workspace;
  let server: Server;
  let other: Server;
  let url: string;
  let otherUrl: string;
  let caFile: string;
  let otherCa: string;
  const body = samplePdf('over tls', 40_000);

  /**
   * An HTTPS origin with a certificate of its own, and that certificate's file. With `watch`,
   * each handshake is noted in `resumed` (whether it resumed a session), and with `close` every
   * answer closes its connection.
   */
  async function tlsOrigin(name: string, watch?: { resumed: boolean[]; close: boolean; maxVersion?: 'TLSv1.2' }): Promise<{ server: Server; url: string; cert: string }> {
    const key = join(ws.dir, `${name}-key.pem`);
    const cert = join(ws.dir, `${name}-cert.pem`);
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${name}`, '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const headers = { 'content-type': 'application/pdf', 'content-length': body.length, ...(watch?.close ? { connection: 'close' } : {}) };
    const s = createServer({ key: await readFile(key), cert: await readFile(cert), maxVersion: watch?.maxVersion }, (_req, res) => res.writeHead(200, headers).end(body));
    if (watch) s.on('secureConnection', (socket: TLSSocket) => watch.resumed.push(socket.isSessionReused()));
    await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
    return { server: s, url: `https://127.0.0.1:${(s.address() as AddressInfo).port}/paper.pdf`, cert };
  }

  beforeAll(async () => {
    ws = await workspace();
    ({ server, url, cert: caFile } = await tlsOrigin('private-ca'));
    ({ server: other, url: otherUrl, cert: otherCa } = await tlsOrigin('extra-ca'));
  });
  afterAll(async () => {
    for (const s of [server, other]) {
      s.closeAllConnections();
      await new Promise((resolve) => s.close(resolve));
    }
    await ws.cleanup();
  });

  it('an unknown CA is a tls_error; trusted through --ca-file it downloads', async () => {
    const manifest = await ws.file('tls.txt', `${url}\n`);
    const refused = await runCli(['download', manifest, '-o', join(ws.dir, 'a'), '--json', '-q', '--retries', '0']);
    expect(refused.records[0]).toMatchObject({ status: 'failed', reason: 'tls_error' });
    const trusted = await runCli(['download', manifest, '-o', join(ws.dir, 'b'), '--json', '-q', '--ca-file', caFile]);
    expect(trusted.code).toBe(0);
    expect(trusted.records[0]).toMatchObject({ status: 'downloaded', bytes: body.length });
    expect((await readFile(join(ws.dir, 'b', trusted.records[0]!.path as string))).equals(body)).toBe(true);
  });

  it('trusts NODE_EXTRA_CA_CERTS beside it, as without it', async () => {
    const manifest = await ws.file('both.txt', `${url}\n${otherUrl}?2\n`);
    // As a system bundle: roots Node.js bundles too, then one of its own.
    const bundle = await ws.file('bundle.pem', `${rootCertificates.slice(0, 20).join('\n')}\n${await readFile(otherCa, 'utf8')}`);
    const res = await runCli(['download', manifest, '-o', join(ws.dir, 'd'), '--json', '-q', '--ca-file', caFile], { env: { NODE_EXTRA_CA_CERTS: bundle } });
    expect(res.code).toBe(0);
    expect(res.records.map((r) => r.status).sort()).toEqual(['deduped', 'downloaded']);
  });

  it.each([['TLS 1.3'], ['TLS 1.2']])('a reconnection resumes the TLS session of the one before (%s)', async (version) => {
    const resumed: boolean[] = [];
    const closing = await tlsOrigin(`closing-${version.replace(' ', '')}`, { resumed, close: true, maxVersion: version === 'TLS 1.2' ? 'TLSv1.2' : undefined });
    try {
      const manifest = await ws.file(`closing-${version}.txt`, [1, 2, 3, 4, 5].map((i) => `${closing.url}?${i}\n`).join(''));
      const res = await runCli(['download', manifest, '-o', join(ws.dir, `e-${version}`), '--json', '-q', '-c', '1', '--ca-file', closing.cert]);
      expect(res.code).toBe(0);
      // one body for every URL: stored once, or found stored by an item that finished after it
      expect(res.records).toHaveLength(5);
      for (const r of res.records) expect(['downloaded', 'deduped']).toContain(r.status);
      // one full handshake, then each new connection (the server closed the last) resumes
      expect(resumed).toEqual([false, true, true, true, true]);
    } finally {
      closing.server.closeAllConnections();
      await new Promise((resolve) => closing.server.close(resolve));
    }
  });

  it('two servers of one host on different ports each resume their own sessions', async () => {
    const first: boolean[] = [];
    const second: boolean[] = [];
    const a = await tlsOrigin('port-a', { resumed: first, close: true });
    const b = await tlsOrigin('port-b', { resumed: second, close: true });
    try {
      const both = await ws.file('ports-ca.pem', (await readFile(a.cert, 'utf8')) + (await readFile(b.cert, 'utf8')));
      const manifest = await ws.file('ports.txt', [1, 2, 3].map((i) => `${a.url}?${i}\n${b.url}?${i}\n`).join(''));
      const res = await runCli(['download', manifest, '-o', join(ws.dir, 'ports'), '--json', '-q', '-c', '1', '--ca-file', both]);
      expect(res.code).toBe(0);
      expect(res.records).toHaveLength(6);
      // Alternating, each server is never offered the other's session (which it could not resume).
      expect(first).toEqual([false, true, true]);
      expect(second).toEqual([false, true, true]);
    } finally {
      for (const o of [a, b]) {
        o.server.closeAllConnections();
        await new Promise((resolve) => o.server.close(resolve));
      }
    }
  });

  it('keeps its connection alive: five items one after another over one TLS handshake', async () => {
    const resumed: boolean[] = [];
    const kept = await tlsOrigin('keep-alive', { resumed, close: false });
    try {
      const manifest = await ws.file('kept.txt', [1, 2, 3, 4, 5].map((i) => `${kept.url}?${i}\n`).join(''));
      const res = await runCli(['download', manifest, '-o', join(ws.dir, 'kept'), '--json', '-q', '-c', '1', '--ca-file', kept.cert]);
      expect(res.code).toBe(0);
      expect(res.records).toHaveLength(5);
      expect(resumed).toEqual([false]);
    } finally {
      kept.server.closeAllConnections();
      await new Promise((resolve) => kept.server.close(resolve));
    }
  });

  it('a file without a readable certificate is a usage error before anything starts', async () => {
    const manifest = await ws.file('tls2.txt', `${url}\n`);
    const junk = await ws.file('junk.pem', 'not a certificate\n');
    const bad = await ws.file('bad.pem', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    for (const [file, message] of [[junk, /no PEM certificate/], [bad, /certificate 1 cannot be read/], [join(ws.dir, 'missing.pem'), /cannot read: ENOENT/]] as const) {
      const res = await runCli(['download', manifest, '-o', join(ws.dir, 'c'), '--ca-file', file]);
      expect(res.code).toBe(2);
      expect(res.stderr).toMatch(message);
    }
  });
});

import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { connect, createServer, type SecureContext, type Server } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trustByAdding, trustByListing } from '../../src/http/trust.js';
import { workspace, type Workspace } from '../helpers/cli.js';

/** A TLS server on loopback with a self-signed certificate of its own (openssl), and that certificate. */
async function selfSigned(ws: Workspace, name: string): Promise<{ server: Server; port: number; pem: string }> {
  const key = join(ws.dir, `${name}-key.pem`);
  const cert = join(ws.dir, `${name}-cert.pem`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${name}`, '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  const server = createServer({ key: await readFile(key), cert: await readFile(cert) }, (socket) => socket.end('hello'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, pem: await readFile(cert, 'utf8') };
}

/** How a handshake with that context ends: 'trusted', or the verification error's code. */
function handshake(port: number, secureContext: SecureContext): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, secureContext }, () => {
      socket.end();
      resolve('trusted');
    });
    socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

describe('--ca-file trust, both ways of building it', () => {
  let ws: Workspace;
  let own: Awaited<ReturnType<typeof selfSigned>>;
  let extra: Awaited<ReturnType<typeof selfSigned>>;
  let stranger: Awaited<ReturnType<typeof selfSigned>>;
  const before = process.env.NODE_EXTRA_CA_CERTS;

  beforeAll(async () => {
    ws = await workspace();
    own = await selfSigned(ws, 'own');
    extra = await selfSigned(ws, 'extra');
    stranger = await selfSigned(ws, 'stranger');
    process.env.NODE_EXTRA_CA_CERTS = await ws.file('extra.pem', extra.pem);
  });
  afterAll(async () => {
    if (before === undefined) delete process.env.NODE_EXTRA_CA_CERTS;
    else process.env.NODE_EXTRA_CA_CERTS = before;
    for (const s of [own, extra, stranger]) await new Promise((resolve) => s.server.close(resolve));
    await ws.cleanup();
  });

  it('this Node.js adds certificates to a copied default store', () => {
    expect(trustByAdding(own.pem)).not.toBeNull();
  });

  it.each([
    ['added to the default store', (pem: string) => trustByAdding(pem)!],
    ['listed as the ca option (where addCACert is missing)', trustByListing],
  ])('%s: trusts the file and NODE_EXTRA_CA_CERTS, and nothing else self-signed', async (_how, build) => {
    const context = build(own.pem);
    expect(await handshake(own.port, context)).toBe('trusted');
    expect(await handshake(extra.port, context)).toBe('trusted');
    expect(await handshake(stranger.port, context)).toBe('DEPTH_ZERO_SELF_SIGNED_CERT');
  });
});

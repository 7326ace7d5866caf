import { BlockList } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ItemError } from '../../src/errors.js';
import { HostHeaders, loadHostHeaders } from '../../src/hosts/headers.js';
import { createAgent } from '../../src/http/client.js';
import { cachedLookup } from '../../src/http/dns-cache.js';
import { BLOCKED_ADDRESS, UrlPolicy } from '../../src/http/url-policy.js';
import { emptyFacts, transfer } from '../../src/download/transfer.js';
import type { RequestGate } from '../../src/http/request-gate.js';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { samplePdf, startOrigin, type Origin } from '../helpers/origin.js';

const open = { allowHost: [], denyHost: [], denyPrivate: false };

function blockedBy(policy: UrlPolicy, url: string): string | null {
  try {
    policy.check(new URL(url));
    return null;
  } catch (err) {
    expect(err).toBeInstanceOf(ItemError);
    return (err as ItemError).message;
  }
}

describe('UrlPolicy', () => {
  it('matches exact hosts and *. subdomains, IDN given in Unicode', () => {
    const p = new UrlPolicy({ ...open, allowHost: ['*.example.org', 'bücher.example'], denyHost: ['bad.example.org'] });
    expect(blockedBy(p, 'https://a.example.org/x')).toBeNull();
    expect(blockedBy(p, 'https://xn--bcher-kva.example/x')).toBeNull();
    expect(blockedBy(p, 'https://example.org/x')).toMatch(/not in --allow-host/);
    expect(blockedBy(p, 'https://bad.example.org/x')).toMatch(/--deny-host/);
    expect(blockedBy(p, 'https://notexample.org/x')).toMatch(/not in --allow-host/);
  });

  it('knows the non-public ranges, IPv4-mapped IPv6 included', () => {
    const p = new UrlPolicy({ ...open, denyPrivate: true });
    for (const h of ['127.0.0.1', '10.0.0.1', '172.31.255.255', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '[::1]', '[fe80::1]', '[fd12::1]', '[::ffff:10.0.0.1]', '224.0.0.1']) {
      expect(blockedBy(p, `http://${h}/`), h).toMatch(/--deny-private/);
    }
    for (const h of ['8.8.8.8', '172.32.0.1', '[2001:4860::8888]', 'example.org', '[64:ff9b::808:808]', '[2002:808:808::1]']) expect(blockedBy(p, `http://${h}/`), h).toBeNull();
    // Private IPv4 addresses inside NAT64 and 6to4 addresses are refused too.
    for (const h of ['[64:ff9b::10.0.0.1]', '[64:ff9b::a9fe:a9fe]', '[2002:7f00:1::]', '[2002:c0a8:101::1]']) expect(blockedBy(p, `http://${h}/`), h).toMatch(/--deny-private/);
  });

  it('the lookup refuses a name that resolves only to refused addresses', async () => {
    const lookup = cachedLookup(new UrlPolicy({ ...open, denyPrivate: true }).ranges);
    const err = await new Promise<NodeJS.ErrnoException | null>((resolve) => lookup('localhost', {}, (e) => resolve(e)));
    expect(err?.code).toBe(BLOCKED_ADDRESS);
  });
});

describe('HostHeaders', () => {
  it('gives each host its own headers, never over http once an earlier hop was https', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'docstokg-headers-'));
    try {
      const file = join(dir, 'h.yaml');
      await writeFile(file, 'version: 1\nhosts:\n  api.example.org: {X-Key: "${KEY}"}\n  "*.pub.example": {X-Token: t}\n');
      const h = loadHostHeaders(file, { KEY: 'k1' });
      expect(h.for(new URL('https://api.example.org/a'), false)).toEqual({ 'x-key': 'k1' });
      expect(h.for(new URL('http://api.example.org/a'), false)).toEqual({ 'x-key': 'k1' });
      expect(h.for(new URL('http://api.example.org/a'), true)).toEqual({});
      expect(h.for(new URL('https://api.example.org/a'), true)).toEqual({ 'x-key': 'k1' });
      expect(h.for(new URL('https://www.pub.example/a'), false)).toEqual({ 'x-token': 't' });
      expect(h.for(new URL('https://other.example.org/a'), false)).toEqual({});
      expect(h.for(new URL('https://example.org/a'), false)).toEqual({});
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('a redirect hop to a refused address (real HTTP)', () => {
  let origin: Origin;
  let dir: string;
  beforeAll(async () => {
    origin = await startOrigin({ '/hop': { body: Buffer.alloc(0), redirect: 'http://127.0.0.2:9/x.pdf' }, '/ok.pdf': { body: samplePdf('hop') } });
    dir = await mkdtemp(join(tmpdir(), 'docstokg-policy-'));
  });
  afterAll(async () => {
    await origin.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('is refused at that hop, before anything is sent to it', async () => {
    // Only 127.0.0.2 counts as private here, so the first hop (127.0.0.1) may go and the second may not.
    const ranges = new BlockList();
    ranges.addAddress('127.0.0.2');
    const policy = new UrlPolicy({ ...open, denyPrivate: true }, ranges);
    const gate: RequestGate = { enter: async () => ({ sent: () => undefined, settle: () => true }) };
    const dispatcher = await createAgent({ connectTimeout: 2000, stallTimeout: 2000, concurrency: 4, blocked: policy.ranges });
    const facts = emptyFacts();
    const input = {
      url: origin.url('/hop'), part: join(dir, 'p.part'), out: dir, headers: {}, auth: null, policy, hostHeaders: new HostHeaders(), dispatcher,
      maxBytes: 1 << 20, minFree: 0, minSpeed: { bytesPerSecond: 0, windowMs: 1000 }, fsync: false, signal: new AbortController().signal,
      held: 0, partFile: false, partRow: undefined, onFreshPart: () => null, onBodyComplete: () => undefined, gate, role: 'artifact' as const, readPages: false, holds: () => true,
    };
    await expect(transfer(input, facts)).rejects.toMatchObject({ code: 'blocked', message: expect.stringMatching(/127\.0\.0\.2 is not a public address/) });
    expect(facts.finalUrl).toBe('http://127.0.0.2:9/x.pdf');
    expect(origin.requests.map((r) => r.path)).toEqual(['/hop']);
    await dispatcher.close();
  });
});

// The soak's fault origin: node:http servers on a few loopback addresses, serving generated
// PDF-shaped bodies with the faults a real origin shows (drops, 503s, content that changes, slow
// bodies, servers without ranges or validators). Every response is logged with the bytes it sent
// and when it finished, so the soak can tell a full body fetched twice from a resumed one.
import { createCipheriv, createHash } from 'node:crypto';
import { createServer } from 'node:http';

export const FAULTS = ['plain', 'plain', 'plain', 'lastmod', 'novalidators', 'noranges', 'drop', 'drop', 'unavailable', 'change', 'slow', 'slow'];

/** Deterministic bytes for (item, version): a %PDF- header, keystream bytes, an %%EOF trailer. */
export function makeBody(seed, size) {
  const head = Buffer.from(`%PDF-1.4\n% soak ${seed}\n`);
  const tail = Buffer.from('\n%%EOF\n');
  const key = createHash('sha256').update(seed).digest();
  const cipher = createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32));
  const middle = cipher.update(Buffer.alloc(Math.max(0, size - head.length - tail.length)));
  return Buffer.concat([head, middle, tail]);
}

/** The item behind a path, with its fault and the version a request sees (changing content moves on). */
export class Corpus {
  constructor(generation, count, random) {
    this.items = [];
    for (let i = 0; i < count; i += 1) {
      const r = random();
      const size = r < 0.6 ? 20_000 + Math.floor(random() * 180_000) : r < 0.95 ? 200_000 + Math.floor(random() * 1_300_000) : 2_000_000 + Math.floor(random() * 4_000_000);
      const fault = FAULTS[Math.floor(random() * FAULTS.length)];
      this.items.push({ id: `g${generation}-${i}`, path: `/g${generation}/${i}.pdf`, size, fault, requests: 0, versions: new Map() });
    }
    this.byPath = new Map(this.items.map((it) => [it.path, it]));
  }

  /** Content changes every third request, three versions in all; other faults keep one version. */
  version(item) {
    return item.fault === 'change' ? Math.min(3, 1 + Math.floor(item.requests / 3)) : 1;
  }

  body(item, version) {
    let v = item.versions.get(version);
    if (!v) {
      const bytes = makeBody(`${item.id} v${version}`, item.size);
      v = { sha256: createHash('sha256').update(bytes).digest('hex'), etag: `"${item.id}-v${version}"` };
      item.versions.set(version, v);
      return { ...v, bytes };
    }
    return { ...v, bytes: makeBody(`${item.id} v${version}`, item.size) };
  }
}

const LAST_MODIFIED = 'Tue, 01 Sep 2026 10:00:00 GMT';

function serve(corpus, log, req, res) {
  const item = corpus.byPath.get((req.url ?? '/').split('?')[0]);
  const entry = { path: req.url, ua: req.headers['user-agent'] ?? '', range: req.headers.range ?? null, status: 0, version: 0, sent: 0, full: false, at: Date.now(), finishedAt: null };
  log.push(entry);
  if (!item) {
    entry.status = 404;
    res.writeHead(404).end();
    return;
  }
  item.requests += 1;
  const n = item.requests;
  if (item.fault === 'unavailable' && n % 3 !== 0) {
    entry.status = 503;
    res.writeHead(503, { 'content-type': 'text/plain' }).end('busy');
    return;
  }
  const version = corpus.version(item);
  const { bytes, etag } = corpus.body(item, version);
  entry.version = version;
  const headers = { 'content-type': 'application/pdf' };
  const validators = item.fault !== 'novalidators' && item.fault !== 'noranges';
  if (validators && item.fault !== 'lastmod') headers.etag = etag;
  if (item.fault === 'lastmod') headers['last-modified'] = LAST_MODIFIED;
  let start = 0;
  const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  const ifRange = req.headers['if-range'];
  const rangeOk = item.fault !== 'noranges' && m && (ifRange === undefined || ifRange === headers.etag || ifRange === headers['last-modified']);
  if (rangeOk) {
    start = Number(m[1]);
    if (start >= bytes.length) {
      entry.status = 416;
      res.writeHead(416, { 'content-range': `bytes */${bytes.length}` }).end();
      return;
    }
    headers['content-range'] = `bytes ${start}-${bytes.length - 1}/${bytes.length}`;
  }
  const body = bytes.subarray(start);
  headers['content-length'] = String(body.length);
  entry.status = rangeOk ? 206 : 200;
  res.writeHead(entry.status, headers);
  res.on('finish', () => {
    entry.finishedAt = Date.now();
    entry.full = entry.status === 200;
  });
  const count = (chunk) => (entry.sent += chunk.length);
  if (item.fault === 'drop' && n % 2 === 1) {
    // A drop mid-body: the connection is reset after some of it.
    const cut = Math.floor(body.length * 0.3) + 1;
    res.write(body.subarray(0, cut), () => res.socket?.resetAndDestroy());
    count(body.subarray(0, cut));
    return;
  }
  if (item.fault === 'slow') {
    const step = 32 * 1024;
    let at = 0;
    const next = () => {
      if (res.destroyed) return;
      const chunk = body.subarray(at, at + step);
      at += chunk.length;
      count(chunk);
      if (at >= body.length) res.end(chunk);
      else res.write(chunk, () => setTimeout(next, 15));
    };
    next();
    return;
  }
  count(body);
  res.end(body);
}

/** One server per loopback address, all on one port. */
export async function startSoakOrigin(corpusRef, hosts, port) {
  const log = [];
  const servers = [];
  for (const host of hosts) {
    const server = createServer((req, res) => serve(corpusRef.current, log, req, res));
    server.keepAliveTimeout = 10_000;
    await new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, resolve);
    });
    servers.push(server);
  }
  return {
    log,
    close: () => Promise.all(servers.map((s) => new Promise((r) => { s.closeAllConnections(); s.close(r); }))),
  };
}

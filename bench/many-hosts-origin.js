// The many-hosts origin: one server on each of N loopback addresses (127.0.1.1 …), each answering
// every request with a small PDF after a set latency; node:http, or node:https given a certificate
// and its key. Runs as its own process, so the arrival times it logs come from its own clock and
// event loop, not docstokg's.
// Driven over IPC by many-hosts.js: {latency} starts a round, {collect} returns its log (and, over
// TLS, how many handshakes the round made and how many of them resumed a session).
import { readFileSync } from 'node:fs';
import { createServer as createHttp } from 'node:http';
import { createServer as createHttps } from 'node:https';
import { performance } from 'node:perf_hooks';

const hosts = Number(process.argv[2] ?? 120);
const port = Number(process.argv[3] ?? 18_090);
let latency = Number(process.argv[4] ?? 200);
const [certFile, keyFile] = process.argv.slice(5);
const tls = certFile ? { cert: readFileSync(certFile), key: readFileSync(keyFile) } : null;
/** one entry per request: [host index, arrival ms, end ms] */
let log = [];
let handshakes = { full: 0, resumed: 0 };

function body(path) {
  // 16 KiB, distinct per path: every item is its own object.
  const head = Buffer.from(`%PDF-1.4\n% ${path}\n`);
  return Buffer.concat([head, Buffer.alloc(16 * 1024 - head.length - 6, 0x20), Buffer.from('%%EOF\n')]);
}

const servers = [];
for (let i = 0; i < hosts; i += 1) {
  const answer = (req, res) => {
    const at = performance.timeOrigin + performance.now();
    const entry = [i, at, 0];
    log.push(entry);
    setTimeout(() => {
      const b = body(req.url ?? '/');
      res.writeHead(200, { 'content-type': 'application/pdf', 'content-length': b.length });
      res.end(b, () => {
        entry[2] = performance.timeOrigin + performance.now();
      });
    }, latency);
  };
  const server = tls ? createHttps(tls, answer) : createHttp(answer);
  if (tls) server.on('secureConnection', (socket) => (socket.isSessionReused() ? handshakes.resumed++ : handshakes.full++));
  server.keepAliveTimeout = 65_000;
  servers.push(new Promise((resolve) => server.listen(port, `127.0.1.${i + 1}`, resolve)));
}
await Promise.all(servers);
process.send?.({ ready: true });
process.on('message', (m) => {
  if (m.latency !== undefined) {
    latency = m.latency;
    log = [];
    handshakes = { full: 0, resumed: 0 };
    process.send({ started: true });
  } else if (m.collect) {
    process.send({ log, handshakes });
  } else if (m.exit) {
    process.exit(0);
  }
});

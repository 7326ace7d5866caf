// The many-hosts origin: one node:http server on each of N loopback addresses (127.0.1.1 …),
// each answering every request with a small PDF after a set latency. Runs as its own process, so
// the arrival times it logs come from its own clock and event loop, not docstokg's.
// Driven over IPC by many-hosts.js: {latency} starts a round, {collect} returns its log.
import { createServer } from 'node:http';
import { performance } from 'node:perf_hooks';

const hosts = Number(process.argv[2] ?? 120);
const port = Number(process.argv[3] ?? 18_090);
let latency = Number(process.argv[4] ?? 200);
/** one entry per request: [host index, arrival ms, end ms] */
let log = [];

function body(path) {
  // 16 KiB, distinct per path: every item is its own object.
  const head = Buffer.from(`%PDF-1.4\n% ${path}\n`);
  return Buffer.concat([head, Buffer.alloc(16 * 1024 - head.length - 6, 0x20), Buffer.from('%%EOF\n')]);
}

const servers = [];
for (let i = 0; i < hosts; i += 1) {
  const server = createServer((req, res) => {
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
  });
  server.keepAliveTimeout = 65_000;
  servers.push(new Promise((resolve) => server.listen(port, `127.0.1.${i + 1}`, resolve)));
}
await Promise.all(servers);
process.send?.({ ready: true });
process.on('message', (m) => {
  if (m.latency !== undefined) {
    latency = m.latency;
    log = [];
    process.send({ started: true });
  } else if (m.collect) {
    process.send({ log });
  } else if (m.exit) {
    process.exit(0);
  }
});

import { spawn, spawnSync } from 'node:child_process';
import { createReadStream, statSync, writeFileSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join, normalize } from 'node:path';
import { makeCertificate } from './tls.js';

const PORT = 18_080;
const PORT_TLS = 18_443;
const PORT_H2 = 18_444;

/**
 * nginx when installed (what a mirror would run), else a node:http static server. nginx also
 * serves HTTPS: HTTP/1.1 only on one port, HTTP/2 offered (ALPN) on another, with a session cache
 * so clients can resume TLS sessions. `bases` names the origins by protocol.
 */
export async function startServer(root, outDir) {
  if (spawnSync('sh', ['-c', 'command -v nginx']).status === 0) {
    const { cert, key } = makeCertificate(outDir);
    const conf = join(outDir, 'nginx.conf');
    writeFileSync(
      conf,
      `worker_processes 2;
daemon off;
pid ${outDir}/nginx.pid;
error_log ${outDir}/nginx-error.log;
events { worker_connections 4096; }
http {
  log_format bytes '$request_uri $status $body_bytes_sent';
  access_log ${outDir}/access.log bytes;
  log_format tls '$connection $ssl_session_reused $server_protocol';
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_requests 100000; keepalive_timeout 65;
  default_type application/pdf;
  ssl_certificate ${cert}; ssl_certificate_key ${key};
  ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:bench:10m; ssl_session_tickets on;
  server { listen 127.0.0.1:${PORT}; root ${root}; }
  server { listen 127.0.0.1:${PORT_TLS} ssl; root ${root}; access_log ${outDir}/tls-access.log tls; }
  server { listen 127.0.0.1:${PORT_H2} ssl http2; root ${root}; http2_max_concurrent_streams 128; access_log ${outDir}/tls-access.log tls; }
}
`,
    );
    const proc = spawn('nginx', ['-c', conf, '-p', outDir], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 500));
    return {
      kind: 'nginx',
      base: `http://127.0.0.1:${PORT}`,
      bases: { http: `http://127.0.0.1:${PORT}`, https: `https://127.0.0.1:${PORT_TLS}`, h2: `https://127.0.0.1:${PORT_H2}` },
      cert,
      accessLog: join(outDir, 'access.log'),
      tlsLog: join(outDir, 'tls-access.log'),
      close: async () => {
        proc.kill('SIGTERM');
        await new Promise((r) => proc.on('close', r));
      },
    };
  }
  const server = createServer((req, res) => {
    const path = join(root, normalize(decodeURIComponent((req.url ?? '/').split('?')[0])));
    let st;
    try {
      st = statSync(path);
    } catch {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/pdf', 'content-length': st.size, etag: `"${st.size}-${st.mtimeMs}"` });
    createReadStream(path).pipe(res);
  });
  server.keepAliveTimeout = 65_000;
  await new Promise((r) => server.listen(PORT, '127.0.0.1', r));
  return { kind: 'node:http', base: `http://127.0.0.1:${PORT}`, bases: { http: `http://127.0.0.1:${PORT}` }, cert: null, accessLog: null, close: () => new Promise((r) => server.close(r)) };
}

/**
 * What the TLS access log says of the requests since it was emptied: how many, over how many
 * connections, how many of those resumed a TLS session, and which HTTP versions were spoken.
 */
export function connectionUse(tlsLog) {
  const lines = readFileSync(tlsLog, 'utf8').split('\n').filter(Boolean).map((l) => l.split(' '));
  const connections = new Map(lines.map(([conn, reused]) => [conn, reused === 'r']));
  return {
    requests: lines.length,
    connections: connections.size,
    resumed: [...connections.values()].filter(Boolean).length,
    protocols: [...new Set(lines.map((l) => l[2]))].join(', '),
  };
}

/** Bytes nginx sent for paths containing `needle` (from the access log). */
export function bytesSent(accessLog, needle) {
  return readFileSync(accessLog, 'utf8')
    .split('\n')
    .filter((l) => l.includes(needle))
    .reduce((sum, l) => sum + Number(l.split(' ')[2] ?? 0), 0);
}

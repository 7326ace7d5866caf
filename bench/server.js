import { spawn, spawnSync } from 'node:child_process';
import { createReadStream, statSync, writeFileSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join, normalize } from 'node:path';

const PORT = 18_080;

/** nginx when installed (what a mirror would run), else a node:http static server. */
export async function startServer(root, outDir) {
  if (spawnSync('sh', ['-c', 'command -v nginx']).status === 0) {
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
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_requests 100000; keepalive_timeout 65;
  default_type application/pdf;
  server { listen 127.0.0.1:${PORT}; root ${root}; }
}
`,
    );
    const proc = spawn('nginx', ['-c', conf, '-p', outDir], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 500));
    return {
      kind: 'nginx',
      base: `http://127.0.0.1:${PORT}`,
      accessLog: join(outDir, 'access.log'),
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
  return { kind: 'node:http', base: `http://127.0.0.1:${PORT}`, accessLog: null, close: () => new Promise((r) => server.close(r)) };
}

/** Bytes nginx sent for paths containing `needle` (from the access log). */
export function bytesSent(accessLog, needle) {
  return readFileSync(accessLog, 'utf8')
    .split('\n')
    .filter((l) => l.includes(needle))
    .reduce((sum, l) => sum + Number(l.split(' ')[2] ?? 0), 0);
}

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/**
 * A real HTTP origin on loopback for tests, the demo and the benchmark, with composable faults.
 * Each path serves a route; every request is logged with its headers and time.
 */
export interface Route {
  body: Buffer;
  status?: number;
  headers?: Record<string, string>;
  /** fail the first N requests with this status (then serve normally) */
  failFirst?: { times: number; status: number; retryAfter?: string };
  /** send the full Content-Length but close the connection after N body bytes */
  truncateAfter?: number;
  /** destroy the socket (RST) after N body bytes */
  resetAfter?: number;
  /** send N body bytes, then go silent for `ms` */
  stallAfter?: { bytes: number; ms: number };
  /** omit Content-Length (chunked transfer) */
  chunked?: boolean;
  /** answer with a redirect to this location */
  redirect?: string;
  redirectStatus?: number;
  /** write the body in chunks of this size with a pause between them */
  trickle?: { chunk: number; ms: number };
}

export interface RequestLog {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  at: number;
}

export interface Origin {
  url: (path: string, host?: string) => string;
  port: number;
  requests: RequestLog[];
  set: (path: string, route: Route) => void;
  close: () => Promise<void>;
}

function countFor(counts: Map<string, number>, path: string): number {
  const n = (counts.get(path) ?? 0) + 1;
  counts.set(path, n);
  return n;
}

async function writeSlowly(res: ServerResponse, body: Buffer, chunk: number, ms: number): Promise<void> {
  for (let i = 0; i < body.length; i += chunk) {
    if (res.destroyed) return;
    res.write(body.subarray(i, i + chunk));
    await new Promise((r) => setTimeout(r, ms));
  }
  res.end();
}

function serve(route: Route, req: IncomingMessage, res: ServerResponse, n: number): void {
  if (route.failFirst && n <= route.failFirst.times) {
    const h: Record<string, string> = { 'content-type': 'text/plain' };
    if (route.failFirst.retryAfter !== undefined) h['retry-after'] = route.failFirst.retryAfter;
    res.writeHead(route.failFirst.status, h).end('try later');
    return;
  }
  if (route.redirect !== undefined) {
    res.writeHead(route.redirectStatus ?? 302, { location: route.redirect }).end();
    return;
  }
  const status = route.status ?? 200;
  const headers: Record<string, string> = { 'content-type': 'application/pdf', ...route.headers };
  if (!route.chunked) headers['content-length'] = String(route.body.length);
  res.writeHead(status, headers);
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  const cut = route.truncateAfter ?? route.resetAfter;
  if (cut !== undefined) {
    res.write(route.body.subarray(0, cut), () => {
      const socket = res.socket as Socket | null;
      if (route.resetAfter !== undefined) socket?.resetAndDestroy();
      else socket?.destroy();
    });
    return;
  }
  if (route.stallAfter) {
    res.write(route.body.subarray(0, route.stallAfter.bytes));
    const t = setTimeout(() => res.end(route.body.subarray(route.stallAfter!.bytes)), route.stallAfter.ms);
    res.on('close', () => clearTimeout(t));
    return;
  }
  if (route.trickle) {
    void writeSlowly(res, route.body, route.trickle.chunk, route.trickle.ms);
    return;
  }
  res.end(route.body);
}

export async function startOrigin(routes: Record<string, Route> = {}): Promise<Origin> {
  const table = new Map(Object.entries(routes));
  const counts = new Map<string, number>();
  const requests: RequestLog[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    requests.push({ method: req.method ?? 'GET', path, headers: req.headers, at: Date.now() });
    const route = table.get(path);
    if (!route) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    serve(route, req, res, countFor(counts, path));
  });
  server.keepAliveTimeout = 30_000;
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    requests,
    url: (path, host = '127.0.0.1') => `http://${host}:${port}${path}`,
    set: (path, route) => table.set(path, route),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

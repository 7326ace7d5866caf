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
  etag?: string;
  lastModified?: string;
  /** honour Range / If-Range (RFC 7233) and conditional GETs (RFC 7232) */
  ranges?: boolean;
  /** answer any conditional request with 412 */
  preconditionFailed?: boolean;
}

/** A route may depend on how many times its path was requested (1-based) and on the request. */
export type RouteSpec = Route | ((n: number, req: IncomingMessage) => Route);

export interface RequestLog {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  at: number;
  /** status sent, once the response has ended or the connection closed */
  status?: number;
  /** when the last byte of the response was handed to the operating system */
  finishedAt?: number;
}

export interface Origin {
  url: (path: string, host?: string) => string;
  port: number;
  requests: RequestLog[];
  set: (path: string, route: RouteSpec) => void;
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

function notModified(route: Route, req: IncomingMessage): boolean {
  const inm = req.headers['if-none-match'];
  if (inm !== undefined) return route.etag !== undefined && inm.split(',').map((t) => t.trim()).includes(route.etag);
  const ims = req.headers['if-modified-since'];
  if (ims !== undefined && route.lastModified) return Date.parse(route.lastModified) <= Date.parse(ims);
  return false;
}

/** The start of a satisfiable `Range: bytes=N-`, or null when the full body must be sent. */
function rangeStart(route: Route, req: IncomingMessage): number | null {
  const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  if (!m) return null;
  const ifRange = req.headers['if-range'];
  if (ifRange !== undefined && ifRange !== route.etag && ifRange !== route.lastModified) return null;
  return Number(m[1]);
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
  const headers: Record<string, string> = { 'content-type': 'application/pdf', ...route.headers };
  if (route.etag) headers.etag = route.etag;
  if (route.lastModified) headers['last-modified'] = route.lastModified;
  const conditional = req.headers['if-none-match'] ?? req.headers['if-modified-since'];
  if (conditional !== undefined && route.preconditionFailed) {
    res.writeHead(412).end();
    return;
  }
  if (route.ranges && notModified(route, req)) {
    res.writeHead(304, headers).end();
    return;
  }
  const range = route.ranges ? rangeStart(route, req) : null;
  if (range !== null && range >= route.body.length) {
    res.writeHead(416, { 'content-range': `bytes */${route.body.length}` }).end();
    return;
  }
  if (range !== null) {
    headers['content-range'] = `bytes ${range}-${route.body.length - 1}/${route.body.length}`;
    route = { ...route, body: route.body.subarray(range), status: 206 };
  }
  const status = route.status ?? 200;
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

/** `bind` picks the loopback address (127.0.0.2, …) so one machine can play several hosts. */
export async function startOrigin(routes: Record<string, RouteSpec> = {}, bind = '127.0.0.1'): Promise<Origin> {
  const table = new Map(Object.entries(routes));
  const counts = new Map<string, number>();
  const requests: RequestLog[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const entry: RequestLog = { method: req.method ?? 'GET', path, headers: req.headers, at: Date.now() };
    requests.push(entry);
    res.on('close', () => (entry.status = res.statusCode));
    res.on('finish', () => (entry.finishedAt = Date.now()));
    const spec = table.get(path);
    if (!spec) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    const n = countFor(counts, path);
    serve(typeof spec === 'function' ? spec(n, req) : spec, req, res, n);
  });
  server.keepAliveTimeout = 30_000;
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, bind, resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    requests,
    url: (path, host = bind) => `http://${host}:${port}${path}`,
    set: (path, route) => table.set(path, route),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

import type { BlockList } from 'node:net';
import type { Agent, Dispatcher } from 'undici';
import { SOCKET_READ_AHEAD_BYTES, TLS_SESSION_HOSTS } from '../config.js';
import { cachedLookup } from './dns-cache.js';
import { loadTransport } from './undici.js';
import { keepingSessions } from './tls-sessions.js';
import { trustWith } from './trust.js';

export interface ClientOptions {
  connectTimeout: number;
  stallTimeout: number;
  concurrency: number;
  /** --deny-private: addresses a connection may not use */
  blocked: BlockList | null;
  /** --ca-file: PEM certificates trusted beside the system's (a private CA, an institutional proxy) */
  ca?: string | null;
  /** --http2: HTTP/2 where the server offers it (ALPN); off by default (docs/decisions.md) */
  http2?: boolean;
  /** called once, before undici loads: the run's process-wide tuning (see runtime-tuning.ts) */
  beforeFirstUse?: () => void;
}

/**
 * One Agent for the run, tuned for many hosts: keep-alive pools per origin, sized so every in-flight
 * item can have its own connection, cached DNS answers, and headers and body timeouts that
 * implement the stall timeout (no byte for that long). Retries are ours alone (no interceptor).
 */
export async function createAgent(opts: ClientOptions): Promise<Agent> {
  opts.beforeFirstUse?.();
  const { Agent: UndiciAgent, buildConnector } = await loadTransport();
  const allowH2 = opts.http2 ?? false;
  const secureContext = opts.ca ? trustWith(opts.ca) : null;
  const lookup = cachedLookup(opts.blocked);
  // Connectors shared by every origin (undici would make one per origin), so that a host's TLS
  // session outlives its connection pool; one per HTTPS port (see tls-sessions.ts).
  const connector = () =>
    buildConnector({
      timeout: opts.connectTimeout,
      lookup,
      allowH2,
      maxCachedSessions: TLS_SESSION_HOSTS,
      // A socket's stream option, which undici's connector sets itself (to 16 KiB for TLS) and lets
      // these options override; its types do not list it.
      ...{ highWaterMark: SOCKET_READ_AHEAD_BYTES },
      ...(secureContext ? { secureContext } : {}),
    });
  return new UndiciAgent({
    connections: Math.max(4, opts.concurrency),
    keepAliveTimeout: 10_000,
    keepAliveMaxTimeout: 60_000,
    headersTimeout: opts.stallTimeout,
    bodyTimeout: opts.stallTimeout,
    connect: keepingSessions(connector, TLS_SESSION_HOSTS),
    maxHeaderSize: 64 * 1024,
    allowH2,
  });
}

/** The run's Agent, made when the first request needs it. */
export class HttpClient {
  private agent: Promise<Agent> | null = null;

  constructor(private readonly opts: ClientOptions) {}

  dispatcher(): Promise<Dispatcher> {
    return (this.agent ??= createAgent(this.opts));
  }

  async close(): Promise<void> {
    if (this.agent) await (await this.agent).close();
  }
}

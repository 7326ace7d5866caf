import type { BlockList } from 'node:net';
import { rootCertificates } from 'node:tls';
import type { Agent, Dispatcher } from 'undici';
import { cachedLookup } from './dns-cache.js';
import { agentTransport, threadsAvailable, ThreadedTransport, type Transport } from './threaded-transport.js';

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
  /** --threads: transfers on this many worker threads, each with its own Agent (0: on this thread) */
  threads?: number;
  /** --deny-private, for the threads (which build the ranges themselves) */
  denyPrivate?: boolean;
}

type Undici = typeof import('undici');
let undici: Promise<Undici> | null = null;

/**
 * undici is loaded on first use, through its public entry point: a run with nothing to fetch,
 * such as a cron re-run of a finished manifest, never pays for it.
 */
export function loadUndici(): Promise<Undici> {
  // undici is CommonJS: bundled, its exports are the namespace's default.
  return (undici ??= import('undici').then((m: Undici & { default?: Undici }) => m.default ?? m));
}

export async function loadAgent(): Promise<typeof Agent> {
  return (await loadUndici()).Agent;
}

/**
 * One Agent for the run, tuned for many hosts: keep-alive pools per origin, sized so every in-flight
 * item can have its own connection, cached DNS answers, and headers and body timeouts that
 * implement the stall timeout (no byte for that long). Retries are ours alone (no interceptor).
 */
export async function createAgent(opts: ClientOptions): Promise<Agent> {
  opts.beforeFirstUse?.();
  const UndiciAgent = await loadAgent();
  return new UndiciAgent({
    connections: Math.max(4, opts.concurrency),
    keepAliveTimeout: 10_000,
    keepAliveMaxTimeout: 60_000,
    headersTimeout: opts.stallTimeout,
    bodyTimeout: opts.stallTimeout,
    connect: { timeout: opts.connectTimeout, lookup: cachedLookup(opts.blocked), ...(opts.ca ? { ca: [...rootCertificates, opts.ca] } : {}) },
    maxHeaderSize: 64 * 1024,
    allowH2: opts.http2 ?? false,
  });
}

/**
 * The run's Agent, made when the first request needs it, and the transport of PDF transfers: the
 * same Agent, or transfer threads (--threads). Metadata and landing pages always use the Agent.
 */
export class HttpClient {
  private agent: Promise<Agent> | null = null;
  private transfers: Promise<Transport> | null = null;
  private threaded: ThreadedTransport | null = null;

  constructor(private readonly opts: ClientOptions) {}

  dispatcher(): Promise<Dispatcher> {
    return (this.agent ??= createAgent(this.opts));
  }

  transport(): Promise<Transport> {
    return (this.transfers ??= this.makeTransport());
  }

  private async makeTransport(): Promise<Transport> {
    const o = this.opts;
    if (!o.threads || !threadsAvailable()) return agentTransport(await this.dispatcher());
    o.beforeFirstUse?.();
    this.threaded = new ThreadedTransport(o.threads, { connectTimeout: o.connectTimeout, stallTimeout: o.stallTimeout, concurrency: o.concurrency, denyPrivate: o.denyPrivate ?? false, ca: o.ca ?? null, http2: o.http2 ?? false });
    return this.threaded;
  }

  async close(): Promise<void> {
    await this.threaded?.close();
    if (this.agent) await (await this.agent).close();
  }
}

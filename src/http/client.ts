import type { BlockList } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import type { Agent, Dispatcher } from 'undici';
import { cachedLookup } from './dns-cache.js';
import { holdHeapBallast } from './heap-ballast.js';

export interface ClientOptions {
  connectTimeout: number;
  stallTimeout: number;
  concurrency: number;
  /** --deny-private: addresses a connection may not use */
  blocked: BlockList | null;
}

let agentClass: Promise<typeof Agent> | null = null;

/**
 * Of undici only the Agent is loaded, on first use: its index also loads fetch, WebSocket, caches
 * and mocks, and even the Agent with llhttp's WebAssembly costs start-up time and memory that a
 * run with nothing to fetch, such as a cron re-run of a finished manifest, never needs (figures in
 * docs/decisions.md).
 */
export function loadAgent(): Promise<typeof Agent> {
  // llhttp is WebAssembly. V8 first compiles it with its baseline compiler, then recompiles the hot
  // parser with its optimizing one on a helper thread, costly for one huge state machine, and a
  // process that has finished waits for that compile before it can exit. HTTP parsing is a small share of a transfer, so the baseline code is kept. V8
  // reads this flag when it compiles a module, so it holds for llhttp if set before undici loads.
  if (agentClass) return agentClass;
  setFlagsFromString('--liftoff-only');
  // A CommonJS module: its exports object is the namespace's default.
  return (agentClass = import('undici/lib/dispatcher/agent.js').then((m: { default: typeof Agent }) => m.default));
}

/**
 * One Agent for the run, tuned for many hosts: keep-alive pools per origin, sized so every in-flight
 * item can have its own connection, cached DNS answers, and headers and body timeouts that
 * implement the stall timeout (no byte for that long). Retries are ours alone (no interceptor).
 */
export async function createAgent(opts: ClientOptions): Promise<Agent> {
  const UndiciAgent = await loadAgent();
  holdHeapBallast();
  return new UndiciAgent({
    connections: Math.max(4, opts.concurrency),
    keepAliveTimeout: 10_000,
    keepAliveMaxTimeout: 60_000,
    headersTimeout: opts.stallTimeout,
    bodyTimeout: opts.stallTimeout,
    connect: { timeout: opts.connectTimeout, lookup: cachedLookup(opts.blocked) },
    maxHeaderSize: 64 * 1024,
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

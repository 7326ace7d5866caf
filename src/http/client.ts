import { createRequire } from 'node:module';
import type { BlockList } from 'node:net';
import type { Agent as UndiciAgent, Dispatcher } from 'undici';
import { cachedLookup } from './dns-cache.js';

type StreamFn = (this: Dispatcher, opts: Dispatcher.RequestOptions, factory: Dispatcher.StreamFactory) => Promise<Dispatcher.StreamData>;

/**
 * Of undici only the Agent and stream() are used, and its index also loads fetch, WebSocket,
 * caches, mocks and the rest: about 110 ms of every run's start. The two modules are required on
 * their own; the index only if an undici release has moved them.
 */
function loadUndici(): { Agent: typeof UndiciAgent; stream: StreamFn } {
  const require = createRequire(import.meta.url);
  try {
    return { Agent: require('undici/lib/dispatcher/agent.js'), stream: require('undici/lib/api/api-stream.js') };
  } catch {
    const undici = require('undici') as { Agent: typeof UndiciAgent; Dispatcher: { prototype: { stream: StreamFn } } };
    return { Agent: undici.Agent, stream: undici.Dispatcher.prototype.stream };
  }
}

const undici = loadUndici();

/** One GET (or other) request through `dispatcher`, its body written to what `factory` returns. */
export function streamRequest(
  dispatcher: Dispatcher,
  url: URL,
  opts: { method: Dispatcher.HttpMethod; headers: Record<string, string>; signal: AbortSignal },
  factory: Dispatcher.StreamFactory,
): Promise<Dispatcher.StreamData> {
  return undici.stream.call(dispatcher, { ...opts, origin: url.origin, path: url.search ? `${url.pathname}${url.search}` : url.pathname }, factory);
}

export interface ClientOptions {
  connectTimeout: number;
  stallTimeout: number;
  concurrency: number;
  /** --deny-private: addresses a connection may not use */
  blocked: BlockList | null;
}

/**
 * One Agent for the run, tuned for many hosts: keep-alive pools per origin, sized so every in-flight
 * item can have its own connection, cached DNS answers, and headers and body timeouts that
 * implement the stall timeout (no byte for that long). Retries are ours alone (no interceptor).
 */
export function createAgent(opts: ClientOptions): UndiciAgent {
  return new undici.Agent({
    connections: Math.max(4, opts.concurrency),
    keepAliveTimeout: 10_000,
    keepAliveMaxTimeout: 60_000,
    headersTimeout: opts.stallTimeout,
    bodyTimeout: opts.stallTimeout,
    connect: { timeout: opts.connectTimeout, lookup: cachedLookup(opts.blocked) },
    maxHeaderSize: 64 * 1024,
  });
}

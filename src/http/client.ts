import type { BlockList } from 'node:net';
import type { Agent, Dispatcher } from 'undici';
import { cachedLookup } from './dns-cache.js';

export interface ClientOptions {
  connectTimeout: number;
  stallTimeout: number;
  concurrency: number;
  /** --deny-private: addresses a connection may not use */
  blocked: BlockList | null;
}

let undici: Promise<typeof import('undici')> | null = null;

/**
 * undici is loaded on first use: it costs ~150 ms and ~20 MB of memory (with llhttp's
 * WebAssembly), which a run with nothing to fetch, such as a cron re-run of a finished manifest,
 * never needs.
 */
export function loadUndici(): Promise<typeof import('undici')> {
  // A CommonJS module: its exports object is the namespace's default (named exports are only
  // detected when it is not bundled).
  return (undici ??= import('undici').then((m) => (m as unknown as { default?: typeof m }).default ?? m));
}

/**
 * One Agent for the run, tuned for many hosts: keep-alive pools per origin, sized so every in-flight
 * item can have its own connection, cached DNS answers, and headers and body timeouts that
 * implement the stall timeout (no byte for that long). Retries are ours alone (no interceptor).
 */
export async function createAgent(opts: ClientOptions): Promise<Agent> {
  const { Agent } = await loadUndici();
  return new Agent({
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

import type { BlockList } from 'node:net';
import { Agent } from 'undici';
import { cachedLookup } from './dns-cache.js';

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
export function createAgent(opts: ClientOptions): Agent {
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

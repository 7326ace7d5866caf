import { Agent } from 'undici';

export interface ClientOptions {
  connectTimeout: number;
  stallTimeout: number;
  concurrency: number;
}

/**
 * One Agent for the run: keep-alive pools per origin, sized so every in-flight item can have its
 * own connection; headers and body timeouts implement the stall timeout (no byte for that long).
 */
export function createAgent(opts: ClientOptions): Agent {
  return new Agent({
    connections: Math.max(4, opts.concurrency),
    keepAliveTimeout: 10_000,
    keepAliveMaxTimeout: 60_000,
    headersTimeout: opts.stallTimeout,
    bodyTimeout: opts.stallTimeout,
    connect: { timeout: opts.connectTimeout },
    maxHeaderSize: 64 * 1024,
  });
}

import type { BlockList } from 'node:net';
import { readFileSync } from 'node:fs';
import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls';
import type { Agent, Dispatcher } from 'undici';
import { SOCKET_READ_AHEAD_BYTES, TLS_SESSION_HOSTS } from '../config.js';
import { cachedLookup } from './dns-cache.js';
import { loadTransport } from './undici.js';
import { keepingSessions } from './tls-sessions.js';

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
 * The trust of a run with --ca-file: Node.js's bundled roots, the certificates of
 * NODE_EXTRA_CA_CERTS (which the new store does not inherit) and the file's. They are added to a
 * default context, which makes Node.js copy its bundled roots already parsed; a `ca` option
 * listing every root instead parses the ~140 of them again, tens of milliseconds at each start.
 * Made once: given `ca` instead, every TLS connection would pay that.
 */
function trustWith(ca: string): SecureContext {
  const extra = pemCertificates(extraCaCerts());
  const context = createSecureContext();
  // The native context's addCACert is what Node.js's own `ca` option calls for each certificate.
  const native = (context as { context?: { addCACert?: (pem: string) => void } }).context;
  if (typeof native?.addCACert !== 'function') return createSecureContext({ ca: [...rootCertificates, ...extra, ca] });
  // A system bundle given as NODE_EXTRA_CA_CERTS mostly repeats the bundled roots, which the copied
  // store holds already: only the others are parsed and added.
  const bundled = new Set(rootCertificates.map(base64Of));
  for (const pem of [...extra.filter((c) => !bundled.has(base64Of(c))), ca]) native.addCACert(pem);
  return context;
}

/** A PEM certificate's base64 alone: the same certificate whatever its line breaks. */
const base64Of = (pem: string): string => pem.replace(/-----[^-]+-----|\s+/g, '');

/** The text of NODE_EXTRA_CA_CERTS, which a `ca` option would otherwise replace. */
function extraCaCerts(): string {
  const file = process.env.NODE_EXTRA_CA_CERTS;
  try {
    return file ? readFileSync(file, 'utf8') : '';
  } catch {
    // Node.js itself only warns about an unreadable file; its certificates are then not trusted either.
    return '';
  }
}

/** The PEM certificates in a text, in order. */
export function pemCertificates(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
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

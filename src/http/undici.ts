/**
 * The parts of undici a run uses, each loaded when first needed: a run with nothing to fetch,
 * such as a cron re-run of a finished manifest, never pays for them, and one without resolvers
 * never loads the HTTP cache. They are loaded module by module rather than through undici's entry
 * point, which also loads fetch, WebSocket, EventSource and cookies; its cookies module reads
 * globalThis.Headers, which makes Node.js load its own copy of undici as well. Together those are
 * tens of milliseconds at the start of every downloading run.
 */
type Undici = typeof import('undici');

export interface Transport {
  Agent: Undici['Agent'];
  buildConnector: Undici['buildConnector'];
}

export interface Lookups {
  cache: Undici['interceptors']['cache'];
  redirect: Undici['interceptors']['redirect'];
  /** What undici's entry point installs as Dispatcher.prototype.request: call it on a dispatcher. */
  request: typeof import('undici/lib/api/api-request.js');
}

/** undici's modules are CommonJS: bundled, each one's export is the namespace's default. */
const value = <T>(m: T | { default: T }): T => (m as { default?: T }).default ?? (m as T);

let transport: Promise<Transport> | null = null;
let lookups: Promise<Lookups> | null = null;

/** The Agent and its connector: what every download uses. */
export function loadTransport(): Promise<Transport> {
  return (transport ??= Promise.all([import('undici/lib/dispatcher/agent.js'), import('undici/lib/core/connect.js')]).then(([agent, connect]) => ({
    Agent: value(agent),
    buildConnector: value(connect),
  })));
}

/** The HTTP cache, redirects and `request`: what resolvers' metadata requests use. */
export function loadLookups(): Promise<Lookups> {
  return (lookups ??= Promise.all([
    import('undici/lib/interceptor/cache.js'),
    import('undici/lib/interceptor/redirect.js'),
    import('undici/lib/api/api-request.js'),
  ]).then(([cache, redirect, request]) => ({ cache: value(cache), redirect: value(redirect), request: value(request) })));
}

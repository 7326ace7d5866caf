/**
 * The parts of undici a run uses, loaded on first use: a run with nothing to fetch, such as a
 * cron re-run of a finished manifest, never pays for them. They are loaded one by one rather
 * than through undici's entry point, which also loads fetch, WebSocket, EventSource and cookies;
 * its cookies module reads globalThis.Headers, which makes Node.js load its own copy of undici as
 * well. Together those are tens of milliseconds at the start of every downloading run.
 */
export interface UndiciParts {
  Agent: typeof import('undici').Agent;
  buildConnector: typeof import('undici').buildConnector;
  cache: typeof import('undici').interceptors.cache;
  redirect: typeof import('undici').interceptors.redirect;
  /** What undici's entry point installs as Dispatcher.prototype.request: call it on a dispatcher. */
  request: typeof import('undici/lib/api/api-request.js');
}

let parts: Promise<UndiciParts> | null = null;

/** undici's modules are CommonJS: bundled, each one's export is the namespace's default. */
const value = <T>(m: T | { default: T }): T => (m as { default?: T }).default ?? (m as T);

export function loadUndici(): Promise<UndiciParts> {
  return (parts ??= Promise.all([
    import('undici/lib/dispatcher/agent.js'),
    import('undici/lib/core/connect.js'),
    import('undici/lib/interceptor/cache.js'),
    import('undici/lib/interceptor/redirect.js'),
    import('undici/lib/api/api-request.js'),
  ]).then(([agent, connect, cache, redirect, request]) => ({
    Agent: value(agent),
    buildConnector: value(connect),
    cache: value(cache),
    redirect: value(redirect),
    request: value(request),
  })));
}

// Types for the undici modules that undici.ts loads one by one: each is the same value undici's
// entry point exports under the name given.
declare module 'undici/lib/dispatcher/agent.js' {
  import type { Agent } from 'undici';
  const agent: typeof Agent;
  export = agent;
}
declare module 'undici/lib/core/connect.js' {
  import type { buildConnector } from 'undici';
  const connector: typeof buildConnector;
  export = connector;
}
declare module 'undici/lib/interceptor/cache.js' {
  import type { interceptors } from 'undici';
  const cache: typeof interceptors.cache;
  export = cache;
}
declare module 'undici/lib/interceptor/redirect.js' {
  import type { interceptors } from 'undici';
  const redirect: typeof interceptors.redirect;
  export = redirect;
}
declare module 'undici/lib/api/api-request.js' {
  import type { Dispatcher } from 'undici';
  /** Dispatcher.prototype.request, which undici's entry point installs: called on a dispatcher. */
  function request(this: Dispatcher, opts: Dispatcher.RequestOptions): Promise<Dispatcher.ResponseData>;
  export = request;
}

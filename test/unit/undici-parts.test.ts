import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import type * as Undici from 'undici';
import { loadLookups, loadTransport } from '../../src/http/undici.js';

// The run loads undici's modules one by one (src/http/undici.ts). This holds that layout to the
// installed release: an upgrade that moves or changes any of them fails here, by name.
describe("undici's parts", () => {
  it('are the very values its entry point exports', async () => {
    const parts = { ...(await loadTransport()), ...(await loadLookups()) };
    const undici = createRequire(import.meta.url)('undici') as typeof Undici;
    expect(parts.Agent).toBe(undici.Agent);
    expect(parts.buildConnector).toBe(undici.buildConnector);
    expect(parts.cache).toBe(undici.interceptors.cache);
    expect(parts.redirect).toBe(undici.interceptors.redirect);
    expect(parts.request).toBe(undici.Dispatcher.prototype.request);
  });
});

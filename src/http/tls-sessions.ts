import { EventEmitter } from 'node:events';
import type { buildConnector } from 'undici';

type Connect = buildConnector.connector;

/**
 * undici's connector, with the TLS session each host last gave held until the next connection to
 * it. undici caches sessions behind weak references, so a busy heap collects them within moments
 * and reconnections (a keep-alive timeout, a server closing) paid a full handshake every time.
 * Holding the very object undici caches keeps its cache entry alive: the resumption itself stays
 * undici's (its key is the TLS server name, or the host where there is none). At most `hosts`
 * sessions are held, the least recently given dropped first.
 */
export function keepingSessions(connect: Connect, hosts: number): Connect {
  const held = new Map<string, Buffer>();
  return (opts, callback) => {
    // undici's connector returns the socket it made (its types say void; the test of resumption
    // in test/e2e/ca-file.test.ts notices if that changes).
    const socket = (connect as (...args: Parameters<Connect>) => unknown)(opts, callback);
    if (opts.protocol === 'https:' && socket instanceof EventEmitter) {
      const key = opts.servername || opts.hostname;
      socket.on('session', (session: Buffer) => {
        held.delete(key);
        held.set(key, session);
        if (held.size > hosts) held.delete(held.keys().next().value!);
      });
    }
    return socket;
  };
}

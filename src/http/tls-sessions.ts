import { EventEmitter } from 'node:events';
import type { buildConnector } from 'undici';

type Connect = buildConnector.connector;

/** HTTPS ports given a connector of their own; connections to further ports share one. */
const PORTS_APART = 64;

/**
 * undici's connectors, with the TLS session each host and port last gave held until the next
 * connection to it. undici caches sessions behind weak references, so a busy heap collects them
 * within moments and reconnections (a keep-alive timeout, a server closing) paid a full handshake
 * every time. Holding the very object undici caches keeps its cache entry alive: the resumption
 * itself stays undici's. undici's key is the TLS server name alone, so two servers of one host on
 * different ports would be offered each other's sessions (and each refuse them): each HTTPS port
 * gets a connector of its own (`make`), up to PORTS_APART ports. At most `hosts` sessions are
 * held, the least recently given dropped first.
 */
export function keepingSessions(make: () => Connect, hosts: number): Connect {
  const held = new Map<string, Buffer>();
  const shared = make();
  const byPort = new Map<string, Connect>();
  const connectorFor = (port: string): Connect => {
    let connect = byPort.get(port);
    if (!connect && byPort.size < PORTS_APART) byPort.set(port, (connect = make()));
    return connect ?? shared;
  };
  return (opts, callback) => {
    const tls = opts.protocol === 'https:';
    const port = opts.port || (tls ? '443' : '80');
    // undici's connector returns the socket it made (its types say void; the tests of resumption
    // in test/e2e/ca-file.test.ts notice if that changes).
    const socket = ((tls ? connectorFor(port) : shared) as (...args: Parameters<Connect>) => unknown)(opts, callback);
    if (tls && socket instanceof EventEmitter) {
      const key = `${opts.servername || opts.hostname}:${port}`;
      socket.on('session', (session: Buffer) => {
        held.delete(key);
        held.set(key, session);
        if (held.size > hosts) held.delete(held.keys().next().value!);
      });
    }
    return socket;
  };
}

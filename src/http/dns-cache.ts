import { lookup, type LookupAddress, type LookupOptions } from 'node:dns';
import type { BlockList } from 'node:net';
import { blockedAddressError, isBlockedAddress } from './url-policy.js';

type Callback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

const TTL_MS = 60_000;

/**
 * dns.lookup with a small positive cache: a run asks the same few thousand hosts over and over,
 * and every getaddrinfo call occupies a libuv thread that fsync and file I/O also need.
 * With `blocked` (--deny-private), refused addresses are removed from every answer, so the socket
 * can only connect to an address that was checked; a name with nothing else left fails.
 */
export function cachedLookup(blocked: BlockList | null = null): (hostname: string, options: LookupOptions, callback: Callback) => void {
  const cache = new Map<string, { at: number; all: LookupAddress[] }>();
  return (hostname, options, callback) => {
    const key = `${hostname}|${options.family ?? 0}`;
    const hit = cache.get(key);
    const answer = (all: LookupAddress[]): void => {
      const allowed = blocked ? all.filter((a) => !isBlockedAddress(blocked, a.address)) : all;
      if (allowed.length === 0) return callback(blockedAddressError(hostname, all.map((a) => a.address)), []);
      if (options.all) callback(null, allowed);
      else callback(null, allowed[0]!.address, allowed[0]!.family);
    };
    if (hit && Date.now() - hit.at < TTL_MS) return answer(hit.all);
    lookup(hostname, { ...options, all: true }, (err, all) => {
      if (err) return callback(err, []);
      // Bounded over a manifest of 100,000 hosts: a full cache starts again (a lookup costs little).
      if (cache.size >= 16_384) cache.clear();
      cache.set(key, { at: Date.now(), all });
      answer(all);
    });
  };
}

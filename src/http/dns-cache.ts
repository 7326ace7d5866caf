import { lookup, type LookupAddress, type LookupOptions } from 'node:dns';

type Callback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

const TTL_MS = 60_000;

/**
 * dns.lookup with a small positive cache: a run asks the same few thousand hosts over and over,
 * and every getaddrinfo call occupies a libuv thread that fsync and file I/O also need.
 */
export function cachedLookup(): (hostname: string, options: LookupOptions, callback: Callback) => void {
  const cache = new Map<string, { at: number; all: LookupAddress[] }>();
  return (hostname, options, callback) => {
    const key = `${hostname}|${options.family ?? 0}`;
    const hit = cache.get(key);
    const answer = (all: LookupAddress[]): void => {
      if (options.all) callback(null, all);
      else callback(null, all[0]!.address, all[0]!.family);
    };
    if (hit && Date.now() - hit.at < TTL_MS) return answer(hit.all);
    lookup(hostname, { ...options, all: true }, (err, all) => {
      if (err) return callback(err, []);
      cache.set(key, { at: Date.now(), all });
      answer(all);
    });
  };
}

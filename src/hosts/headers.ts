import { lookup, object, onlyKeys, readYaml, hostKey, Where } from './yaml.js';

/**
 * Per-host request headers (API keys of publishers' text-and-data-mining endpoints) from a YAML
 * file whose values may name environment variables, so secrets need not be written in the file:
 *
 *   version: 1
 *   hosts:
 *     api.elsevier.com: {X-ELS-APIKey: ${ELSEVIER_API_KEY}}
 *
 * They go only to a request whose host matches (never to the host a redirect leads to, never over
 * http once an earlier hop was https), and are never written to records, logs, events or the ledger.
 */
const NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Headers the download itself owns (ranges, validators, framing). */
const RESERVED = new Set(['host', 'range', 'if-range', 'if-none-match', 'if-modified-since', 'content-length', 'transfer-encoding', 'connection', 'accept-encoding', 'te', 'upgrade', 'keep-alive']);

export class HostHeaders {
  constructor(private readonly hosts: Map<string, Record<string, string>> = new Map()) {}

  /** Headers for one request to `url`; `afterHttps` when an earlier hop of the same attempt was https. */
  for(url: URL, afterHttps: boolean): Record<string, string> {
    if (this.hosts.size === 0) return {};
    if (afterHttps && url.protocol !== 'https:') return {};
    return lookup(this.hosts, url.hostname) ?? {};
  }
}

function expand(value: string, env: NodeJS.ProcessEnv, w: Where): string {
  const out = value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
    const v = env[name];
    if (v === undefined || v === '') w.fail(`environment variable ${name} is not set`);
    return v;
  });
  if (/[\r\n\0]/.test(out)) w.fail('a header value may not contain CR, LF or NUL');
  return out;
}

export function loadHostHeaders(file: string, env: NodeJS.ProcessEnv): HostHeaders {
  const w = new Where(file, '');
  const doc = object(readYaml(file), w);
  onlyKeys(doc, ['version', 'hosts'], w);
  if (doc.version !== 1) w.at('version').fail(`expected 1, got ${JSON.stringify(doc.version)}`);
  const hosts = new Map<string, Record<string, string>>();
  if (doc.hosts !== undefined && doc.hosts !== null) {
    for (const [k, v] of Object.entries(object(doc.hosts, w.at('hosts')))) {
      const hw = w.at('hosts').at(k);
      const headers: Record<string, string> = {};
      if (v === null || typeof v !== 'object' || Array.isArray(v)) hw.fail('expected a mapping of header names to values');
      for (const [name, value] of Object.entries(v as Record<string, unknown>)) {
        const vw = hw.at(name);
        if (!NAME.test(name)) vw.fail('not a valid header name');
        if (RESERVED.has(name.toLowerCase())) vw.fail('this header is set by docstokg itself and cannot be configured');
        // The value is never echoed in a message: it may be the secret itself.
        if (typeof value !== 'string') vw.fail('expected a string value');
        headers[name.toLowerCase()] = expand(value as string, env, vw);
      }
      hosts.set(hostKey(k, hw), headers);
    }
  }
  return new HostHeaders(hosts);
}

import { Where, object, onlyKeys, readYaml } from '../hosts/yaml.js';
import { packageFile } from '../package-files.js';

export const RESOLVER_NAMES = ['openalex', 'unpaywall', 'crossref', 'arxiv', 'europepmc'] as const;
export type ResolverName = (typeof RESOLVER_NAMES)[number];

/** resolvers.yaml (SPEC §9): which resolvers run, in which order, against which base URLs. */
export interface ResolverConfig {
  order: ResolverName[];
  /** read HTML answers for the PDF links they name */
  landing: boolean;
  baseUrls: Record<ResolverName, string>;
}

export function builtinResolvers(): string {
  return packageFile('config/resolvers.default.yaml');
}

function baseUrl(v: unknown, w: Where, fallback: string | undefined): string {
  if (v === undefined) {
    if (fallback === undefined) w.fail('missing (a mapping with base_url)');
    return fallback;
  }
  const o = object(v, w);
  onlyKeys(o, ['base_url'], w);
  const url = o.base_url;
  if (typeof url !== 'string') return w.at('base_url').fail(`expected a URL, got ${JSON.stringify(url)}`);
  // URL.parse is Node 22; canParse is in Node 20.
  if (!URL.canParse(url)) return w.at('base_url').fail(`not a valid URL: ${JSON.stringify(url)}`);
  const { protocol } = new URL(url);
  if (protocol !== 'http:' && protocol !== 'https:') w.at('base_url').fail('must be an http(s) URL');
  return url.replace(/\/+$/, '');
}

/** Reads and validates a resolvers file; a resolver it leaves out keeps its built-in base URL. */
export function loadResolvers(file: string, builtin: ResolverConfig | null = null): ResolverConfig {
  const w = new Where(file, '');
  const doc = object(readYaml(file), w);
  onlyKeys(doc, ['version', 'order', 'landing', ...RESOLVER_NAMES], w);
  if (doc.version !== 1) w.at('version').fail(`expected 1, got ${JSON.stringify(doc.version)}`);
  const order = doc.order ?? builtin?.order;
  if (!Array.isArray(order)) return w.at('order').fail(`expected a list of resolver names, got ${JSON.stringify(order)}`);
  const seen = new Set<string>();
  order.forEach((name: unknown, i) => {
    if (!RESOLVER_NAMES.includes(name as ResolverName)) w.at('order').at(i).fail(`unknown resolver ${JSON.stringify(name)} (known: ${RESOLVER_NAMES.join(', ')})`);
    if (seen.has(name as string)) w.at('order').at(i).fail(`${name} is listed twice`);
    seen.add(name as string);
  });
  const landing = doc.landing ?? builtin?.landing ?? true;
  if (typeof landing !== 'boolean') return w.at('landing').fail(`expected true or false, got ${JSON.stringify(landing)}`);
  const baseUrls = {} as Record<ResolverName, string>;
  for (const name of RESOLVER_NAMES) baseUrls[name] = baseUrl(doc[name], w.at(name), builtin?.baseUrls[name]);
  return { order: order as ResolverName[], landing, baseUrls };
}

/** The built-in file, then the user's on top of it. */
export function resolverConfig(file: string | undefined): ResolverConfig {
  const builtin = loadResolvers(builtinResolvers());
  return file ? loadResolvers(file, builtin) : builtin;
}

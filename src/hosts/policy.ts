import { packageFile } from '../package-files.js';
import { hostKey, lookup, number, object, onlyKeys, readYaml, Where } from './yaml.js';

/**
 * Per-host policy from the DocsToKG YAML formats, validated once and resolved per host.
 * Unknown keys are errors (exit 2), not warnings: a misspelt `max_concurent` silently ignored
 * would make a run impolite without anyone noticing.
 */
export interface RateWindow {
  limit: number;
  ms: number;
}

export interface RolePolicy {
  windows: RateWindow[];
  maxDelayMs: number;
  maxConcurrent: number;
}

export interface BreakerPolicy {
  failMax: number;
  resetTimeoutMs: number;
  retryAfterCapMs: number | null;
}

export const ROLES = ['artifact', 'metadata', 'landing'] as const;
export type Role = (typeof ROLES)[number];

/**
 * What the gate, the pool and the ledger's hosts table key a host's politeness by: the host for
 * PDFs, `<role> <host>` for metadata and landing requests (each role has its own rates, slots and
 * breaker, as ratelimits.yaml gives each role its own limits).
 */
export function gateKey(host: string, role: Role): string {
  return role === 'artifact' ? host : `${role} ${host}`;
}

export function splitGateKey(key: string): { host: string; role: Role } {
  const i = key.indexOf(' ');
  return i < 0 ? { host: key, role: 'artifact' } : { host: key.slice(i + 1), role: key.slice(0, i) as Role };
}

const UNIT_MS: Record<string, number> = { second: 1000, minute: 60_000, hour: 3_600_000, day: 86_400_000 };

/** `5/SECOND`, `500/HOUR`, `1/3SECOND` (one per three seconds). */
export function parseRate(text: unknown, w: Where): RateWindow {
  if (typeof text !== 'string') w.fail(`expected a rate such as "2/SECOND", got ${JSON.stringify(text)}`);
  const m = /^\s*(\d+)\s*\/\s*(\d*)\s*([a-z]+)\s*$/i.exec(text);
  if (!m) w.fail(`bad rate ${JSON.stringify(text)} (expected N/UNIT or N/kUNIT, UNIT one of SECOND MINUTE HOUR DAY)`);
  const unit = UNIT_MS[m[3]!.toLowerCase()];
  if (unit === undefined) w.fail(`bad unit ${JSON.stringify(m[3])} in ${JSON.stringify(text)} (expected SECOND, MINUTE, HOUR or DAY)`);
  const limit = Number(m[1]);
  const k = m[2] === '' ? 1 : Number(m[2]);
  if (limit < 1) w.fail(`rate ${JSON.stringify(text)} allows nothing: the count must be at least 1`);
  if (k < 1) w.fail(`rate ${JSON.stringify(text)}: the unit multiplier must be at least 1`);
  return { limit, ms: k * unit };
}

function rolePolicy(v: unknown, w: Where, base: RolePolicy): RolePolicy {
  const o = object(v, w);
  onlyKeys(o, ['rates', 'max_delay_ms', 'max_concurrent'], w);
  const out = { ...base };
  if (o.rates !== undefined) {
    if (!Array.isArray(o.rates)) w.at('rates').fail('expected a list of rates');
    out.windows = (o.rates as unknown[]).map((r, i) => parseRate(r, w.at('rates').at(i)));
  }
  if (o.max_delay_ms !== undefined) out.maxDelayMs = number(o.max_delay_ms, w.at('max_delay_ms'), { min: 0 });
  if (o.max_concurrent !== undefined) out.maxConcurrent = number(o.max_concurrent, w.at('max_concurrent'), { min: 1, integer: true });
  return out;
}

function roles(v: unknown, w: Where, base: Record<Role, RolePolicy>): Record<Role, RolePolicy> {
  const o = object(v, w);
  onlyKeys(o, ROLES, w);
  const out = { ...base };
  for (const role of ROLES) if (o[role] !== undefined) out[role] = rolePolicy(o[role], w.at(role), base[role]);
  return out;
}

export class RatePolicies {
  private readonly cache = new Map<string, RolePolicy>();
  constructor(private readonly defaults: Record<Role, RolePolicy>, private readonly hosts: Map<string, Record<Role, RolePolicy>>) {}
  /** The policy of a gate key (see gateKey). */
  resolve(key: string): RolePolicy {
    let p = this.cache.get(key);
    if (!p) {
      const { host, role } = splitGateKey(key);
      p = (lookup(this.hosts, host.toLowerCase()) ?? this.defaults)[role];
      // Bounded: a manifest of 100,000 hosts must not keep an entry for each.
      if (this.cache.size >= 16_384) this.cache.clear();
      this.cache.set(key, p);
    }
    return p;
  }
}

const UNLIMITED: RolePolicy = { windows: [], maxDelayMs: 2000, maxConcurrent: Number.MAX_SAFE_INTEGER };

export function loadRatelimits(file: string): RatePolicies {
  const w = new Where(file, '');
  const doc = object(readYaml(file), w);
  onlyKeys(doc, ['version', 'defaults', 'hosts'], w);
  if (doc.version !== 1) w.at('version').fail(`expected 1, got ${JSON.stringify(doc.version)}`);
  const base = { artifact: UNLIMITED, metadata: UNLIMITED, landing: UNLIMITED };
  const defaults = doc.defaults === undefined ? base : roles(doc.defaults, w.at('defaults'), base);
  const hosts = new Map<string, Record<Role, RolePolicy>>();
  if (doc.hosts !== undefined && doc.hosts !== null) {
    for (const [k, v] of Object.entries(object(doc.hosts, w.at('hosts')))) {
      const hw = w.at('hosts').at(k);
      hosts.set(hostKey(k, hw), roles(v, hw, defaults));
    }
  }
  return new RatePolicies(defaults, hosts);
}

export class BreakerPolicies {
  constructor(private readonly defaults: BreakerPolicy, private readonly hosts: Map<string, BreakerPolicy>) {}
  /** The policy of a host, or of a gate key's host. */
  resolve(key: string): BreakerPolicy {
    return lookup(this.hosts, splitGateKey(key).host.toLowerCase()) ?? this.defaults;
  }
}

function breaker(v: unknown, w: Where, base: BreakerPolicy): BreakerPolicy {
  const o = object(v, w);
  onlyKeys(o, ['fail_max', 'reset_timeout_s', 'retry_after_cap_s'], w);
  return {
    failMax: o.fail_max === undefined ? base.failMax : number(o.fail_max, w.at('fail_max'), { min: 1, integer: true }),
    resetTimeoutMs: o.reset_timeout_s === undefined ? base.resetTimeoutMs : number(o.reset_timeout_s, w.at('reset_timeout_s'), { min: 0.001 }) * 1000,
    retryAfterCapMs: o.retry_after_cap_s === undefined ? base.retryAfterCapMs : number(o.retry_after_cap_s, w.at('retry_after_cap_s'), { min: 0 }) * 1000,
  };
}

export function loadBreakers(file: string): BreakerPolicies {
  const w = new Where(file, '');
  const doc = object(readYaml(file), w);
  onlyKeys(doc, ['version', 'defaults', 'hosts'], w);
  if (doc.version !== undefined && doc.version !== 1) w.at('version').fail(`expected 1, got ${JSON.stringify(doc.version)}`);
  const base: BreakerPolicy = { failMax: 5, resetTimeoutMs: 60_000, retryAfterCapMs: null };
  const defaults = doc.defaults === undefined ? base : breaker(doc.defaults, w.at('defaults'), base);
  const hosts = new Map<string, BreakerPolicy>();
  if (doc.hosts !== undefined && doc.hosts !== null) {
    for (const [k, v] of Object.entries(object(doc.hosts, w.at('hosts')))) {
      const hw = w.at('hosts').at(k);
      hosts.set(hostKey(k, hw), breaker(v, hw, defaults));
    }
  }
  return new BreakerPolicies(defaults, hosts);
}

/** The built-in policies shipped in config/ (used when no file is given). */
export function builtinConfig(name: 'ratelimits.default.yaml' | 'breakers.default.yaml'): string {
  return packageFile(`config/${name}`);
}

import { readFileSync } from 'node:fs';
import { parse, YAMLParseError } from 'yaml';
import { UsageError } from '../errors.js';

/** Shared reading and validation of the YAML policy files: every problem names file, key and what is wrong. */
export type Json = Record<string, unknown>;

export class Where {
  constructor(readonly file: string, readonly path: string) {}
  at(key: string | number): Where {
    return new Where(this.file, typeof key === 'number' ? `${this.path}[${key}]` : this.path ? `${this.path}.${key}` : key);
  }
  fail(problem: string): never {
    throw new UsageError(`${this.file}: ${this.path || '(top level)'}: ${problem}`);
  }
}

export function object(v: unknown, w: Where): Json {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) w.fail(`expected a mapping, got ${JSON.stringify(v)}`);
  return v as Json;
}

export function onlyKeys(o: Json, allowed: readonly string[], w: Where): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) w.at(k).fail(`unknown key (expected one of ${allowed.join(', ')})`);
}

export function number(v: unknown, w: Where, opts: { min: number; integer?: boolean }): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) w.fail(`expected a number, got ${JSON.stringify(v)}`);
  if (opts.integer && !Number.isInteger(v)) w.fail(`expected a whole number, got ${v}`);
  if (v < opts.min) w.fail(`must be at least ${opts.min}, got ${v}`);
  return v;
}

export function hostKey(k: string, w: Where): string {
  const host = k.trim().toLowerCase();
  if (!/^(\*\.)?[a-z0-9.:[\]_-]+$/.test(host)) w.fail('not a host name (use "example.org" or "*.example.org")');
  return host;
}

/**
 * The shipped config files as JSON, keyed by their YAML text, put in by the bundle's build
 * (scripts/bundle.js); absent when the modules run unbundled. A cold YAML parser spends several
 * milliseconds on each file, and every run reads the defaults.
 */
declare const DOCSTOKG_SHIPPED_YAML: Record<string, string> | undefined;
const shipped: Record<string, string> = typeof DOCSTOKG_SHIPPED_YAML === 'undefined' ? {} : DOCSTOKG_SHIPPED_YAML;

export function readYaml(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  // The very text of a shipped file: its value, parsed when the bundle was built.
  if (Object.hasOwn(shipped, text)) return JSON.parse(shipped[text]!) as unknown;
  try {
    return parse(text);
  } catch (err) {
    const where = err instanceof YAMLParseError && err.linePos ? ` line ${err.linePos[0].line}` : '';
    throw new UsageError(`${file}:${where} YAML syntax error: ${(err as Error).message.split('\n')[0]}`);
  }
}

/** Longest matching key wins: an exact host, then the most specific `*.` wildcard. */
export function lookup<T>(table: Map<string, T>, host: string): T | undefined {
  const exact = table.get(host);
  if (exact) return exact;
  const labels = host.split('.');
  for (let i = 1; i < labels.length; i += 1) {
    const hit = table.get(`*.${labels.slice(i).join('.')}`);
    if (hit) return hit;
  }
  return undefined;
}


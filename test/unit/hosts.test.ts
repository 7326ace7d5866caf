import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Breaker } from '../../src/hosts/breaker.js';
import { Deferred, HostGate } from '../../src/hosts/gate.js';
import { SlidingLimiter } from '../../src/hosts/limiter.js';
import { builtinConfig, loadBreakers, loadRatelimits } from '../../src/hosts/policy.js';
import { breakerOutcome } from '../../src/http/classify.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'docstokg-hosts-'));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));
const yaml = async (name: string, text: string) => {
  const p = join(dir, name);
  await writeFile(p, text);
  return p;
};

describe('ratelimits.yaml', () => {
  it('reads defaults, roles, several windows, N/kUNIT and wildcard hosts (most specific wins)', async () => {
    const p = loadRatelimits(
      await yaml(
        'ok.yaml',
        `version: 1
defaults:
  artifact: {rates: ["2/SECOND", "500/HOUR"], max_delay_ms: 2000, max_concurrent: 4}
hosts:
  Export.Arxiv.org:
    artifact: {rates: ["1/3SECOND"]}
  "*.example.org":
    artifact: {rates: ["5/second"], max_concurrent: 2}
  "*.deep.example.org":
    artifact: {rates: ["1/minute"]}
`,
      ),
    );
    expect(p.resolve('export.arxiv.org')).toEqual({ windows: [{ limit: 1, ms: 3000 }], maxDelayMs: 2000, maxConcurrent: 4 });
    expect(p.resolve('a.example.org').windows).toEqual([{ limit: 5, ms: 1000 }]);
    expect(p.resolve('x.deep.example.org').windows).toEqual([{ limit: 1, ms: 60_000 }]);
    expect(p.resolve('other.net').windows).toEqual([{ limit: 2, ms: 1000 }, { limit: 500, ms: 3_600_000 }]);
    expect(p.resolve('other.net', 'landing').windows).toEqual([]);
  });

  it.each([
    ['syntax.yaml', 'version: 1\ndefaults: [unclosed', /syntax\.yaml:.*YAML syntax error/],
    ['unknown.yaml', 'version: 1\ndefaults:\n  artifact: {max_concurent: 3}', /unknown\.yaml: defaults\.artifact\.max_concurent: unknown key/],
    ['zero.yaml', 'version: 1\ndefaults:\n  artifact: {rates: ["0/SECOND"]}', /zero\.yaml: defaults\.artifact\.rates\[0\]: .*at least 1/],
    ['unit.yaml', 'version: 1\ndefaults:\n  artifact: {rates: ["5/FORTNIGHT"]}', /unit\.yaml: defaults\.artifact\.rates\[0\]: bad unit/],
    ['type.yaml', 'version: 1\ndefaults:\n  artifact: {max_concurrent: "four"}', /type\.yaml: defaults\.artifact\.max_concurrent: expected a number/],
    ['neg.yaml', 'version: 1\nhosts:\n  a.org: {artifact: {max_delay_ms: -5}}', /neg\.yaml: hosts\.a\.org\.artifact\.max_delay_ms: must be at least 0/],
    ['version.yaml', 'version: 2', /version\.yaml: version: expected 1/],
    ['role.yaml', 'version: 1\ndefaults: {pdf: {}}', /role\.yaml: defaults\.pdf: unknown key/],
  ])('%s is refused naming file, key and problem', async (name, text, message) => {
    const path = await yaml(name, text);
    expect(() => loadRatelimits(path)).toThrow(message);
  });

  it('ships built-in defaults that load', () => {
    expect(loadRatelimits(builtinConfig('ratelimits.default.yaml')).resolve('127.0.0.1').windows).toEqual([]);
    expect(loadRatelimits(builtinConfig('ratelimits.default.yaml')).resolve('export.arxiv.org').windows).toEqual([{ limit: 1, ms: 3000 }]);
    expect(loadBreakers(builtinConfig('breakers.default.yaml')).resolve('x.org')).toEqual({ failMax: 5, resetTimeoutMs: 60_000, retryAfterCapMs: null });
  });
});

describe('breakers.yaml', () => {
  it('reads defaults and hosts; refuses bad values', async () => {
    const b = loadBreakers(await yaml('b.yaml', 'defaults: {fail_max: 3, reset_timeout_s: 10, retry_after_cap_s: 900}\nhosts:\n  slow.org: {fail_max: 10}'));
    expect(b.resolve('slow.org')).toEqual({ failMax: 10, resetTimeoutMs: 10_000, retryAfterCapMs: 900_000 });
    expect(b.resolve('x.org').failMax).toBe(3);
    const bad = await yaml('bb.yaml', 'defaults: {fail_max: 0}');
    expect(() => loadBreakers(bad)).toThrow(/bb\.yaml: defaults\.fail_max: must be at least 1/);
  });
});

describe('SlidingLimiter', () => {
  it('never lets more than N starts into any window, wherever it is placed', () => {
    const l = new SlidingLimiter([{ limit: 5, ms: 1000 }, { limit: 12, ms: 10_000 }]);
    const starts: number[] = [];
    for (let t = 0; t < 20_000; t += 7) {
      if (l.waitMs(t) === 0) {
        l.take(t);
        starts.push(t);
      }
    }
    for (const s of starts) {
      expect(starts.filter((x) => x >= s && x < s + 1000).length).toBeLessThanOrEqual(5);
      expect(starts.filter((x) => x >= s && x < s + 10_000).length).toBeLessThanOrEqual(12);
    }
    expect(starts.length).toBeGreaterThanOrEqual(24);
  });
  it('tells how long to wait', () => {
    const l = new SlidingLimiter([{ limit: 1, ms: 3000 }], () => 0);
    const ticket = l.take(100);
    expect(l.waitMs(1100)).toBe(2000);
    l.restamp(ticket, 600);
    expect(l.waitMs(1100)).toBe(2500);
    l.restamp(ticket, 200);
    expect(l.waitMs(1100)).toBe(2500);
    expect(new SlidingLimiter([]).waitMs(0)).toBe(0);
  });
});

describe('Breaker', () => {
  it('opens after fail_max failures, lets one probe through after the reset timeout, closes on success', () => {
    const b = new Breaker({ failMax: 3, resetTimeoutMs: 1000, retryAfterCapMs: null }, () => {}, () => 0);
    for (let i = 0; i < 3; i += 1) b.failure(0);
    expect(b.state).toBe('open');
    expect(b.waitMs(500)).toBe(500);
    expect(b.waitMs(1000)).toBe(0);
    b.sent(1000);
    expect(b.state).toBe('half_open');
    expect(b.waitMs(1000)).toBeGreaterThan(0);
    b.failure(1001);
    expect(b.state).toBe('open');
    b.sent(3000);
    b.success();
    expect(b.state).toBe('closed');
    expect(b.failures).toBe(0);
  });
  it('counts 5xx, 429, timeouts and connection errors; other 4xx are neutral', () => {
    expect(['http_503', 'http_429', 'http_408', 'timeout', 'stalled', 'connect_error'].map((r) => breakerOutcome(r as never))).toEqual(Array(6).fill('failure'));
    expect(['http_404', 'http_403', 'not_pdf', 'too_large'].map((r) => breakerOutcome(r as never))).toEqual(Array(4).fill('neutral'));
    expect(breakerOutcome(null)).toBe('success');
  });
});

describe('HostGate', () => {
  it('pauses a host on Retry-After and reports when it is above the cap', async () => {
    let now = 0;
    const rates = loadRatelimits(await yaml('g.yaml', 'version: 1\ndefaults: {artifact: {max_delay_ms: 100}}'));
    const breakers = loadBreakers(await yaml('gb.yaml', 'defaults: {fail_max: 2, reset_timeout_s: 1}'));
    const saved: unknown[] = [];
    const gate = new HostGate(rates, breakers, 60_000, new Map(), (r) => saved.push(r), () => now);
    gate.pass('a.org', now);
    expect(gate.settle('a.org', 'failure', 'http_429', 5000, now)).toBe(true);
    expect(gate.check('a.org', now)).toEqual({ waitMs: 5000, why: 'cooldown' });
    gate.pass('b.org', now);
    expect(gate.settle('b.org', 'failure', 'http_503', 120_000, now)).toBe(false);
    expect(gate.abandonReason('b.org', gate.check('b.org', now)!)).toBe('retry_after_too_long');
    expect(saved.length).toBeGreaterThan(0);
    now = 6000;
    await gate.enter('a.org', new AbortController().signal);
    gate.settle('a.org', 'failure', 'http_500', null, now);
    expect(gate.check('a.org', now)?.why).toBe('breaker');
    await expect(gate.enter('a.org', new AbortController().signal)).rejects.toBeInstanceOf(Deferred);
    expect(gate.abandonReason('a.org', gate.check('a.org', now)!)).toBe('breaker_open');
  });
  it('restores an open breaker from the ledger', async () => {
    const rates = loadRatelimits(await yaml('g2.yaml', 'version: 1'));
    const breakers = loadBreakers(await yaml('gb2.yaml', 'defaults: {fail_max: 2, reset_timeout_s: 1}'));
    const stored = new Map([['dead.org', { host: 'dead.org', breaker_state: 'open' as const, open_until: 50_000, cooldown_until: 0, failures: 2, last_error: 'http_503' }]]);
    const gate = new HostGate(rates, breakers, 60_000, stored, () => {}, () => 1000);
    expect(gate.check('dead.org', 1000)).toEqual({ waitMs: 49_000, why: 'breaker' });
  });
});

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { HostBreaker } from '../../src/hosts/breaker.js';
import { HostGate, type SharedHosts } from '../../src/hosts/gate.js';
import type { HostRow } from '../../src/ledger/types.js';
import { Pace } from '../../src/hosts/pace.js';
import { builtinConfig, gateKey, loadBreakers, loadRatelimits } from '../../src/hosts/policy.js';
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
    expect(p.resolve(gateKey('other.net', 'landing')).windows).toEqual([]);
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

describe('Pace (limiter adapter)', () => {
  beforeEach(() => vi.useFakeTimers({ toFake: ['performance', 'Date', 'setTimeout', 'setInterval'] }));
  afterEach(() => vi.useRealTimers());

  it('never lets more than N starts into any window, wherever it is placed, and spaces them evenly', () => {
    const pace = new Pace([{ limit: 5, ms: 1000 }, { limit: 12, ms: 10_000 }]);
    const starts: number[] = [];
    for (let t = 0; t < 20_000; t += 7) {
      if (pace.waitMs() === 0 && pace.take()) starts.push(t);
      vi.advanceTimersByTime(7);
    }
    for (const s of starts) {
      expect(starts.filter((x) => x >= s && x < s + 1000).length).toBeLessThanOrEqual(5);
      expect(starts.filter((x) => x >= s && x < s + 10_000).length).toBeLessThanOrEqual(12);
    }
    // 12 per 10 s (plus the first at once): the longer window sets the pace.
    expect(starts.length).toBeGreaterThanOrEqual(23);
  });

  it('tells how long to wait, lets a new host go at once, and pushes the next start back by a late departure', () => {
    const pace = new Pace([{ limit: 1, ms: 1000 }]);
    expect(pace.waitMs()).toBe(0);
    expect(pace.take()).toBe(true);
    expect(pace.take()).toBe(false);
    // one per 1,020 ms: the window plus its margin
    expect(pace.waitMs()).toBe(1020);
    vi.advanceTimersByTime(300);
    pace.charge(300);
    expect(pace.waitMs()).toBe(1020);
    vi.advanceTimersByTime(1020);
    expect(pace.idle()).toBe(true);
    expect(new Pace([]).waitMs()).toBe(0);
    expect(new Pace([]).take()).toBe(true);
  });
});

describe('HostBreaker (opossum adapter)', () => {
  beforeEach(() => vi.useFakeTimers({ toFake: ['Date', 'setTimeout', 'setInterval', 'clearTimeout'] }));
  afterEach(() => vi.useRealTimers());
  const policy = { failMax: 3, resetTimeoutMs: 1000, retryAfterCapMs: null };

  it('opens after fail_max consecutive failures, lets one probe through after the reset timeout, closes on success', async () => {
    const changes: string[] = [];
    const b = new HostBreaker(policy, null, Date.now(), (x) => changes.push(x.state), () => 0);
    for (let i = 0; i < 2; i += 1) b.admit().settle('failure');
    b.admit().settle('success');
    expect(b.failures).toBe(0);
    for (let i = 0; i < 3; i += 1) b.admit().settle('failure');
    expect(b.state).toBe('open');
    expect(b.waitMs(Date.now())).toBe(1000);
    await vi.advanceTimersByTimeAsync(1000);
    expect(b.state).toBe('half_open');
    expect(b.waitMs(Date.now())).toBe(0);
    const probe = b.admit();
    // one probe per half-open period
    expect(b.waitMs(Date.now())).toBeGreaterThan(0);
    probe.sent();
    probe.settle('failure');
    await vi.advanceTimersByTimeAsync(0);
    expect(b.state).toBe('open');
    await vi.advanceTimersByTimeAsync(1000);
    b.admit().settle('success');
    await vi.advanceTimersByTimeAsync(0);
    expect(b.state).toBe('closed');
    expect(b.failures).toBe(0);
    expect(changes).toEqual(['open', 'half_open', 'open', 'half_open', 'closed']);
    b.dispose();
  });

  it('neutral answers never count, but end a probe (the host is up); an interrupted probe decides nothing', async () => {
    const b = new HostBreaker(policy, null, Date.now(), () => {}, () => 0);
    for (let i = 0; i < 10; i += 1) b.admit().settle('neutral');
    expect(b.state).toBe('closed');
    for (let i = 0; i < 3; i += 1) b.admit().settle('failure');
    await vi.advanceTimersByTimeAsync(1000);
    const dropped = b.admit();
    dropped.drop();
    expect(b.state).toBe('half_open');
    expect(b.waitMs(Date.now())).toBe(0);
    b.admit().settle('neutral');
    await vi.advanceTimersByTimeAsync(0);
    expect(b.state).toBe('closed');
    b.dispose();
  });

  it('jitters each opening by up to 20% and restores a stored breaker with the time it has left', () => {
    const b = new HostBreaker(policy, null, Date.now(), () => {}, () => 0.5);
    for (let i = 0; i < 3; i += 1) b.admit().settle('failure');
    expect(b.openUntil - Date.now()).toBe(1100);
    b.dispose();
    const now = Date.now();
    const open = new HostBreaker(policy, { breaker_state: 'open', open_until: now + 30_000, failures: 3 }, now);
    expect(open.state).toBe('open');
    expect(open.waitMs(now)).toBe(30_000);
    open.dispose();
    const expired = new HostBreaker(policy, { breaker_state: 'open', open_until: now - 5, failures: 3 }, now);
    expect(expired.state).toBe('half_open');
    expect(expired.waitMs(now)).toBe(0);
    expired.dispose();
  });

  it('classifies 5xx, 429, timeouts and connection errors as failures; other 4xx are neutral; an interrupt says nothing', () => {
    expect(['http_503', 'http_429', 'http_408', 'timeout', 'stalled', 'connect_error'].map((r) => breakerOutcome(r as never))).toEqual(Array(6).fill('failure'));
    expect(['http_404', 'http_403', 'not_pdf', 'too_large'].map((r) => breakerOutcome(r as never))).toEqual(Array(4).fill('neutral'));
    expect(breakerOutcome(null)).toBe('success');
    expect(breakerOutcome('interrupted')).toBe(null);
  });
});

describe('HostGate', () => {
  it('pauses a host on Retry-After and reports when it is above the cap', async () => {
    let now = 0;
    const rates = loadRatelimits(await yaml('g.yaml', 'version: 1\ndefaults: {artifact: {max_delay_ms: 100}}'));
    const breakers = loadBreakers(await yaml('gb.yaml', 'defaults: {fail_max: 2, reset_timeout_s: 1}'));
    const saved: unknown[] = [];
    const gate = new HostGate(rates, breakers, 60_000, () => undefined, (r) => saved.push(r), () => now);
    expect(gate.check('a.org', now)).toBe(null);
    expect(gate.admit('a.org').settle('failure', 'http_429', 5000)).toBe(true);
    expect(gate.check('a.org', now)).toEqual({ waitMs: 5000, why: 'cooldown' });
    expect(gate.admit('b.org').settle('failure', 'http_503', 120_000)).toBe(false);
    expect(gate.abandonReason('b.org', gate.check('b.org', now)!)).toBe('retry_after_too_long');
    expect(saved.length).toBeGreaterThan(0);
    now = 6000;
    expect(gate.check('a.org', now)).toBe(null);
    gate.admit('a.org').settle('failure', 'http_500', null);
    expect(gate.check('a.org', now)?.why).toBe('breaker');
    expect(gate.abandonReason('a.org', gate.check('a.org', now)!)).toBe('breaker_open');
    expect(saved.at(-1)).toMatchObject({ host: 'a.org', breaker_state: 'open', failures: 2, last_error: 'http_500' });
  });

  it('restores an open breaker from the ledger', async () => {
    const rates = loadRatelimits(await yaml('g2.yaml', 'version: 1'));
    const breakers = loadBreakers(await yaml('gb2.yaml', 'defaults: {fail_max: 2, reset_timeout_s: 1}'));
    const stored = new Map([['dead.org', { host: 'dead.org', breaker_state: 'open' as const, open_until: 50_000, cooldown_until: 0, failures: 2, last_error: 'http_503' }]]);
    const gate = new HostGate(rates, breakers, 60_000, (h) => stored.get(h), () => {}, () => 1000);
    expect(gate.check('dead.org', 1000)).toEqual({ waitMs: 49_000, why: 'breaker' });
  });

  it("takes up another process's pause and open breaker from the ledger, but not its own row", async () => {
    let now = 10_000;
    const rates = loadRatelimits(await yaml('g4.yaml', 'version: 1\ndefaults: {artifact: {rates: [], max_delay_ms: 100}}'));
    const breakers = loadBreakers(await yaml('gb4.yaml', 'defaults: {fail_max: 5, reset_timeout_s: 30}'));
    const rows = new Map<string, HostRow & { updated_at: number }>();
    const gate = new HostGate(rates, breakers, 60_000, (h) => rows.get(h), (r, at) => rows.set(r.host, { ...r, updated_at: at }), () => now);
    expect(gate.check('a.org')).toBe(null);
    // Another process stores a Retry-After pause: seen once the row is read again.
    const other = { host: 'a.org', breaker_state: 'closed' as const, open_until: 0, cooldown_until: now + 5_000, failures: 0, last_error: 'http_429' };
    rows.set('a.org', { ...other, updated_at: now + 1 });
    expect(gate.check('a.org')).toBe(null);
    now += 150;
    expect(gate.check('a.org')).toEqual({ waitMs: 4_850, why: 'cooldown' });
    // ...and a breaker it opened.
    rows.set('b.org', { ...other, host: 'b.org', cooldown_until: 0, breaker_state: 'open', open_until: now + 20_000, updated_at: now - 1 });
    expect(gate.check('b.org')).toEqual({ waitMs: 20_000, why: 'breaker' });
    // This process's own row (a pause it was given, then a success) changes nothing.
    gate.admit('c.org').settle('failure', 'http_503', 1_000);
    now += 2_000;
    gate.admit('c.org').settle('success', null, null);
    now += 150;
    expect(gate.check('c.org')).toBe(null);
  });

  it('lets a paced request go only when the host is free by the schedule all processes share, taken with a network slot in hand', async () => {
    let now = 0;
    const rates = loadRatelimits(await yaml('g5.yaml', 'version: 1\ndefaults: {artifact: {rates: ["10/SECOND"], max_delay_ms: 5000}}'));
    const breakers = loadBreakers(await yaml('gb5.yaml', 'defaults: {fail_max: 5, reset_timeout_s: 30}'));
    // The ledger's take statement, as one shared row would run it.
    let nextAt = 0;
    const taken: number[] = [];
    const shared: SharedHosts = {
      take: (_host, spacing, at) => {
        if (nextAt > at) return nextAt;
        nextAt = at + spacing;
        taken.push(at);
        return null;
      },
      notBefore: (_host, at) => (nextAt = Math.max(nextAt, at)),
      countFailure: () => 0,
    };
    const gates = [0, 1].map(() => new HostGate(rates, breakers, 60_000, () => undefined, () => {}, () => now, undefined, shared));
    // Looking for a network slot takes nothing: a wait for one would send the request late.
    expect(gates[0]!.check('a.org', now)).toBe(null);
    expect(gates[1]!.check('a.org', now)).toBe(null);
    expect(taken).toEqual([]);
    // The first with a network slot in hand takes the host; the other learns when it is free.
    expect(gates[0]!.check('a.org', now, true)).toBe(null);
    gates[0]!.admit('a.org').sent();
    const sp = gates[1]!.spacingMs('a.org');
    expect(gates[1]!.check('a.org', now, true)).toEqual({ waitMs: sp, why: 'rate' });
    now = 40;
    expect(gates[1]!.check('a.org', now)).toEqual({ waitMs: sp - 40, why: 'rate' });
    // A request that left late keeps the host taken for a spacing after it left.
    shared.notBefore('a.org', 130);
    now = sp;
    expect(gates[1]!.check('a.org', now, true)).toEqual({ waitMs: 130 - sp, why: 'rate' });
    now = 130;
    expect(gates[1]!.check('a.org', now, true)).toBe(null);
    expect(taken).toEqual([0, 130]);
  });

  it('counts a host\'s consecutive failures across every process: the one that reaches fail_max opens the breaker', async () => {
    const rates = loadRatelimits(await yaml('g6.yaml', 'version: 1\ndefaults: {artifact: {rates: [], max_delay_ms: 5000}}'));
    const breakers = loadBreakers(await yaml('gb6.yaml', 'defaults: {fail_max: 3, reset_timeout_s: 30}'));
    // The ledger's counter, as one shared row would keep it.
    let failures = 0;
    const shared: SharedHosts = {
      take: () => null,
      notBefore: () => undefined,
      countFailure: (_host, failed) => (failures = failed ? failures + 1 : 0),
    };
    const [a, b] = [0, 1].map(() => new HostGate(rates, breakers, 60_000, () => undefined, () => {}, Date.now, undefined, shared));
    a!.admit('d.org').settle('failure', 'http_500', null);
    // A success anywhere starts the count again.
    b!.admit('d.org').settle('failure', 'http_500', null);
    b!.admit('d.org').settle('success', null, null);
    expect(failures).toBe(0);
    a!.admit('d.org').settle('failure', 'http_500', null);
    a!.admit('d.org').settle('failure', 'http_500', null);
    expect(a!.check('d.org')).toBe(null);
    // Alone, b has seen one failure since its success: with the others', it is the third.
    b!.admit('d.org').settle('failure', 'http_500', null);
    expect(b!.check('d.org')?.why).toBe('breaker');
  });

  it('keeps no state for idle hosts: 100,000 hosts asked once each leave a few thousand entries at most', async () => {
    const rates = loadRatelimits(await yaml('g3.yaml', 'version: 1\ndefaults: {artifact: {rates: ["1000/SECOND"]}}'));
    const breakers = loadBreakers(await yaml('gb3.yaml', 'defaults: {fail_max: 2, reset_timeout_s: 1}'));
    vi.useFakeTimers({ toFake: ['performance', 'Date'] });
    try {
      const gate = new HostGate(rates, breakers, 60_000, () => undefined, () => {}, Date.now);
      for (let i = 0; i < 100_000; i += 1) {
        const host = `h${i}.example.org`;
        expect(gate.check(host)).toBe(null);
        gate.admit(host).settle('success', null, null);
        // a host idle for its pace interval (1 ms here) is forgotten at the next sweep
        if (i % 50 === 49) vi.advanceTimersByTime(1);
      }
      expect(gate.snapshot().length).toBeLessThan(10_000);
    } finally {
      vi.useRealTimers();
    }
  });
});

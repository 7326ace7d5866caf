import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonl, runCli, workspace, type Workspace } from '../helpers/cli.js';
import { queryLedger } from '../helpers/ledger.js';
import { samplePdf, startOrigin, type Origin } from '../helpers/origin.js';

describe('a dead host among live ones', () => {
  let live: Origin;
  let dead: Origin;
  let ws: Workspace;

  beforeAll(async () => {
    [live, dead] = await Promise.all([startOrigin({}, '127.0.0.4'), startOrigin({}, '127.0.0.5')]);
    ws = await workspace();
  });
  afterAll(async () => {
    await Promise.all([live.close(), dead.close()]);
    await ws.cleanup();
  });

  it('is checked by one probe per reset period while other work remains, and its items end breaker_open at once when none does', async () => {
    const items: unknown[] = [];
    for (let i = 0; i < 30; i += 1) {
      live.set(`/l/${i}.pdf`, { body: samplePdf(`l${i}`, 3000) });
      items.push({ id: `l${i}`, url: live.url(`/l/${i}.pdf`) });
    }
    for (let i = 0; i < 20; i += 1) {
      dead.set(`/d/${i}.pdf`, { body: Buffer.alloc(0), failFirst: { times: 1e9, status: 503 } });
      items.push({ id: `d${i}`, url: dead.url(`/d/${i}.pdf`) });
    }
    const manifest = await ws.file('dead.jsonl', jsonl(items));
    // The live host is paced so that its work lasts a few reset periods.
    const rl = await ws.file('rl.yaml', 'version: 1\ndefaults:\n  artifact: {rates: ["10/SECOND"], max_delay_ms: 200, max_concurrent: 4}\n');
    const br = await ws.file('br.yaml', 'defaults: {fail_max: 3, reset_timeout_s: 0.6}\n');
    const out = `${ws.dir}/dead`;
    const res = await runCli(['download', manifest, '-o', out, '--json', '--ratelimits', rl, '--breakers', br, '--retries', '2', '--retry-delay', '5']);
    expect(res.code).toBe(1);
    const by = (p: string) => res.records.filter((r) => String(r.id).startsWith(p));
    expect(by('l').map((r) => r.status)).toEqual(Array(30).fill('downloaded'));
    // An item may spend its 3 attempts on the host before its breaker opens (fail_max 3 counts
    // every item's failures); every other one ends blocked, not after attempts of its own.
    const reasons = by('d').map((r) => r.reason);
    expect(reasons.filter((r) => r === 'http_503').length).toBeLessThanOrEqual(1);
    expect(reasons.filter((r) => r === 'breaker_open').length).toBeGreaterThanOrEqual(19);

    // By the origins' own clocks: the live host's work spanned this long...
    const liveAt = live.requests.map((r) => r.at);
    const span = Math.max(...liveAt) - Math.min(...liveAt);
    // ...and the dead host got at most the per-host cap's first requests (they fail together),
    // then one probe per reset period (600 ms plus jitter), never one request per item.
    expect(dead.requests.length).toBeGreaterThanOrEqual(3);
    expect(dead.requests.length, `${dead.requests.length} requests over ${span} ms`).toBeLessThanOrEqual(4 + Math.ceil(span / 600) + 1);
    const probes = dead.requests.map((r) => r.at).sort((a, b) => a - b).slice(4);
    for (let i = 1; i < probes.length; i += 1) expect(probes[i]! - probes[i - 1]!).toBeGreaterThanOrEqual(550);
    // Nothing more was sent to the dead host once the live host's work was done.
    expect(Math.max(...dead.requests.map((r) => r.at))).toBeLessThanOrEqual(Math.max(...liveAt) + 100);
    // Its items stay to do for the next run, and its cool-down is stored.
    const blocked = new Set(by('d').filter((r) => r.reason === 'breaker_open').map((r) => String(r.id)));
    const states = queryLedger<{ item_id: string; state: string }>(out, "SELECT item_id, state FROM jobs WHERE item_id LIKE 'd%'");
    expect(states.filter((s) => blocked.has(s.item_id)).map((s) => s.state)).toEqual(Array(blocked.size).fill('pending'));
    expect(queryLedger<{ breaker_state: string }>(out, "SELECT breaker_state FROM hosts WHERE host = '127.0.0.5'")[0]?.breaker_state).toMatch(/open/);
  });
});

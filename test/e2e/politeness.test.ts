import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonl, runCli, workspace, type Workspace } from '../helpers/cli.js';
import { queryLedger } from '../helpers/ledger.js';
import { samplePdf, startOrigin, type Origin, type RequestLog } from '../helpers/origin.js';
import { maxInWindow } from '../helpers/windows.js';

const at = (reqs: RequestLog[]) => reqs.map((r) => r.at);

describe('politeness: rate limits, Retry-After, breakers', () => {
  let healthy: Origin;
  let limited: Origin;
  let dead: Origin;
  let ws: Workspace;

  beforeAll(async () => {
    [healthy, limited, dead] = await Promise.all([startOrigin({}, '127.0.0.1'), startOrigin({}, '127.0.0.2'), startOrigin({}, '127.0.0.3')]);
    ws = await workspace();
  });
  afterAll(async () => {
    await Promise.all([healthy.close(), limited.close(), dead.close()]);
    await ws.cleanup();
  });

  it('three hosts: healthy at full speed, limited never above 5/s, dead contacted only by breaker probes', async () => {
    const items: unknown[] = [];
    for (let i = 0; i < 40; i += 1) {
      healthy.set(`/h/${i}.pdf`, { body: samplePdf(`h${i}`, 4000) });
      items.push({ id: `h${i}`, url: healthy.url(`/h/${i}.pdf`) });
    }
    for (let i = 0; i < 15; i += 1) {
      limited.set(`/l/${i}.pdf`, { body: samplePdf(`l${i}`, 4000) });
      items.push({ id: `l${i}`, url: limited.url(`/l/${i}.pdf`) });
    }
    for (let i = 0; i < 8; i += 1) {
      dead.set(`/d/${i}.pdf`, { body: Buffer.alloc(0), failFirst: { times: 1e9, status: 503 } });
      items.push({ id: `d${i}`, url: dead.url(`/d/${i}.pdf`) });
    }
    const manifest = await ws.file('three.jsonl', jsonl(items));
    const ratelimits = await ws.file('rl.yaml', 'version: 1\ndefaults:\n  artifact: {rates: [], max_delay_ms: 100}\nhosts:\n  127.0.0.2:\n    artifact: {rates: ["5/SECOND"], max_delay_ms: 100}\n');
    const breakers = await ws.file('br.yaml', 'defaults: {fail_max: 3, reset_timeout_s: 0.5}\n');
    const out = `${ws.dir}/three`;
    const started = Date.now();
    const res = await runCli(['download', manifest, '-o', out, '--json', '--ratelimits', ratelimits, '--breakers', breakers, '--retry-delay', '5']);
    const runMs = Date.now() - started;
    expect(res.code).toBe(1);
    const status = (prefix: string) => res.records.filter((r) => String(r.id).startsWith(prefix)).map((r) => r.status);
    expect(status('h')).toEqual(Array(40).fill('downloaded'));
    expect(status('l')).toEqual(Array(15).fill('downloaded'));
    expect(res.records.filter((r) => String(r.id).startsWith('d')).map((r) => r.reason)).toEqual(Array(8).fill('breaker_open'));

    const lt = at(limited.requests);
    // 5/s at the gate; arrival times carry each connection's own set-up time (up to ~30 ms on a
    // loaded machine), so the window is taken 50 ms short.
    expect(maxInWindow(lt, 950), lt.map((t) => t - lt[0]!).join(" ")).toBeLessThanOrEqual(5);
    // fail_max failures open the breaker; after that only one probe per reset timeout (plus jitter).
    expect(dead.requests.length).toBeGreaterThanOrEqual(3);
    expect(dead.requests.length).toBeLessThanOrEqual(3 + Math.ceil(runMs / 500));
    const probes = at(dead.requests).slice(3);
    for (let i = 1; i < probes.length; i += 1) expect(probes[i]! - probes[i - 1]!).toBeGreaterThanOrEqual(450);
    // The healthy host never waited on the others: it was done before the limited host was.
    expect(Math.max(...at(healthy.requests))).toBeLessThan(Math.max(...at(limited.requests)));
    // Items blocked by the breaker stay to do for the next run.
    const states = queryLedger<{ state: string }>(out, "SELECT state FROM jobs WHERE item_id LIKE 'd%'");
    expect(states.every((s) => s.state === 'pending' || s.state === 'failed')).toBe(true);
    expect(queryLedger<{ breaker_state: string }>(out, "SELECT breaker_state FROM hosts WHERE host = '127.0.0.3'")[0]?.breaker_state).toMatch(/open/);
  });

  it('an open breaker is stored: a second run inside its reset timeout sends nothing to that host', async () => {
    dead.set('/p/1.pdf', { body: Buffer.alloc(0), failFirst: { times: 1e9, status: 500 } });
    const manifest = await ws.file('persist.jsonl', jsonl([{ id: 'p1', url: dead.url('/p/1.pdf') }]));
    const breakers = await ws.file('br30.yaml', 'defaults: {fail_max: 2, reset_timeout_s: 30}\n');
    const out = `${ws.dir}/persist`;
    const first = await runCli(['download', manifest, '-o', out, '--json', '--breakers', breakers, '--retry-delay', '5']);
    expect(first.records[0]).toMatchObject({ status: 'failed', reason: 'breaker_open' });
    const sent = dead.requests.filter((r) => r.path === '/p/1.pdf').length;
    expect(sent).toBe(2);
    const second = await runCli(['download', manifest, '-o', out, '--json', '--breakers', breakers]);
    expect(second.records[0]).toMatchObject({ status: 'failed', reason: 'breaker_open', attempts: 0 });
    expect(dead.requests.filter((r) => r.path === '/p/1.pdf').length).toBe(sent);
    const st = await runCli(['status', '-o', out, '--json']);
    expect(JSON.parse(st.stdout).hosts).toEqual([expect.objectContaining({ host: '127.0.0.3', breaker: 'open', failures: 2 })]);
  });

  it('honours Retry-After for the whole host, and leaves an item pending when it is above the cap', async () => {
    limited.set('/ra/1.pdf', { body: samplePdf('ra1', 3000), failFirst: { times: 1, status: 429, retryAfter: '1' } });
    limited.set('/ra/2.pdf', { body: samplePdf('ra2', 3000) });
    const manifest = await ws.file('ra.jsonl', jsonl([{ id: 'ra1', url: limited.url('/ra/1.pdf') }, { id: 'ra2', url: limited.url('/ra/2.pdf') }]));
    const rl = await ws.file('rl-open.yaml', 'version: 1\ndefaults:\n  artifact: {rates: [], max_delay_ms: 3000}\n');
    const out = `${ws.dir}/ra`;
    const before = limited.requests.length;
    const res = await runCli(['download', manifest, '-o', out, '--json', '--ratelimits', rl, '--retry-delay', '1', '--per-host', '1']);
    expect(res.code).toBe(0);
    const reqs = limited.requests.slice(before);
    const first429 = reqs.find((r) => r.path === '/ra/1.pdf')!.at;
    const later = reqs.filter((r) => r.at > first429);
    expect(later.length).toBeGreaterThan(0);
    expect(later.every((r) => r.at - first429 >= 950)).toBe(true);

    limited.set('/ra/3.pdf', { body: samplePdf('ra3', 3000), failFirst: { times: 1e9, status: 503, retryAfter: '3600' } });
    const m3 = await ws.file('ra3.jsonl', jsonl([{ id: 'ra3', url: limited.url('/ra/3.pdf') }]));
    const long = await runCli(['download', m3, '-o', out, '--json', '--ratelimits', rl, '--retry-after-cap', '2']);
    expect(long.records[0]).toMatchObject({ status: 'failed', reason: 'retry_after_too_long', http_status: 503, attempts: 1 });
    expect(queryLedger<{ state: string }>(out, "SELECT state FROM jobs WHERE item_id = 'ra3'")[0]!.state).toBe('pending');
    const sent = limited.requests.length;
    const again = await runCli(['download', m3, '-o', out, '--json', '--ratelimits', rl, '--retry-after-cap', '2']);
    expect(again.records[0]).toMatchObject({ reason: 'retry_after_too_long', attempts: 0 });
    expect(limited.requests.length).toBe(sent);
  });

  it('a 404 is asked exactly once and does not count against the breaker', async () => {
    const manifest = await ws.file('404.jsonl', jsonl(Array.from({ length: 6 }, (_, i) => ({ id: `n${i}`, url: healthy.url(`/missing/${i}.pdf`) }))));
    const breakers = await ws.file('br2.yaml', 'defaults: {fail_max: 2, reset_timeout_s: 30}\n');
    const res = await runCli(['download', manifest, '-o', `${ws.dir}/404`, '--json', '--breakers', breakers]);
    expect(res.records.map((r) => r.reason)).toEqual(Array(6).fill('http_404'));
    for (let i = 0; i < 6; i += 1) expect(healthy.requests.filter((r) => r.path === `/missing/${i}.pdf`)).toHaveLength(1);
  });

  it('a bad policy file is a usage error naming file, key and problem', async () => {
    const m = await ws.file('x.jsonl', jsonl([{ url: healthy.url('/x.pdf') }]));
    const bad = await ws.file('bad.yaml', 'version: 1\nhosts:\n  a.org:\n    artifact: {rates: ["-3/SECOND"]}\n');
    const res = await runCli(['download', m, '-o', `${ws.dir}/never`, '--ratelimits', bad]);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/bad\.yaml: hosts\.a\.org\.artifact\.rates\[0\]: bad rate/);
  });
});

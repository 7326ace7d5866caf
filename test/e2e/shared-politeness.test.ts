import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { fromVictim, jsonl, originAndWorkspace, runCli, runWithVictim } from '../helpers/cli.js';
import { queryLedger } from '../helpers/ledger.js';
import { freshDatabase, queryPg } from '../helpers/postgres.js';
import { samplePdf, startOrigin } from '../helpers/origin.js';
import { maxInWindow, maxOverlap } from '../helpers/windows.js';

/** The ledger's arguments for a test's processes, and a count the test reads from it. */
interface SharedLedger {
  args: string[];
  count: (sql: string) => Promise<number>;
}

const LEDGERS: [string, (out: string) => Promise<SharedLedger>][] = [
  ['SQLite', async (out) => ({ args: [], count: async (sql) => queryLedger<{ n: number }>(out, sql)[0]!.n })],
  [
    'PostgreSQL',
    async () => {
      const db = await freshDatabase();
      return { args: ['--db', db], count: async (sql) => (await queryPg<{ n: number }>(db, sql.replace('COUNT(*)', 'COUNT(*)::int')))[0]!.n };
    },
  ],
];

/** Processes sharing one ledger share each host's politeness: its pace, its caps, its pauses, its breaker. */
describe.each(LEDGERS)('politeness across processes on one %s ledger', (name, ledgerFor) => {
  const env = originAndWorkspace(() => startOrigin({}, name === 'SQLite' ? '127.0.0.2' : '127.0.0.3'));

  it("three processes, one killed and started again, never send a host more than its rate", async () => {
    const N = 70;
    // Answers take a while, so every process has requests out at once.
    for (let i = 0; i < N; i += 1) env.origin.set(`/r/${i}.pdf`, { body: samplePdf(`r ${i}`, 30_000), trickle: { chunk: 10_000, ms: 60 } });
    const manifest = await env.ws.file('r.jsonl', jsonl(Array.from({ length: N }, (_, i) => ({ id: `r${i}`, url: env.origin.url(`/r/${i}.pdf`) }))));
    const rl = await env.ws.file('rl10.yaml', 'version: 1\ndefaults:\n  artifact: {rates: ["10/SECOND"], max_delay_ms: 5000, max_concurrent: 8}\n');
    const out = join(env.ws.dir, 'r-out');
    const ledger = await ledgerFor(out);
    const args = ['download', manifest, '-o', out, ...ledger.args, '--json', '--no-progress', '-c', '8', '--ratelimits', rl];
    // The origin stamps arrivals on this process's event loop: a stall of it (other test files
    // share the cores) stamps requests late, closer together than they came.
    const stalls = monitorEventLoopDelay({ resolution: 5 });
    stalls.enable();
    const { runs, victim } = runWithVictim(args);
    await sleep(1500);
    process.kill(victim(), 'SIGKILL');
    expect((await runs[0])!.signal).toBe('SIGKILL');
    // Started again at once: its own pace is new, the host's shared one is not.
    const again = await runCli(args);
    const rest = await Promise.all(runs.slice(1));
    for (const r of [again, ...rest]) expect(r.code, r.stderr).toBe(0);
    expect(await ledger.count("SELECT COUNT(*) AS n FROM jobs WHERE state = 'done'")).toBe(N);
    const at = env.origin.requests.filter((r) => r.path.startsWith('/r/')).map((r) => r.at);
    stalls.disable();
    // Arrival times carry each connection's set-up (see the politeness test), and this loop's
    // stalls: the window is that much short of a second.
    const slack = Math.min(300, Math.max(50, stalls.max / 1e6));
    expect(maxInWindow(at, 1000 - slack), `${at.map((t) => t - at[0]!).join(' ')} (slack ${slack} ms)`).toBeLessThanOrEqual(10);
    // Only what the killed process had on the way may have been asked twice: the other processes
    // together asked for each URL at most once.
    const others = env.origin.requests.filter((r) => r.path.startsWith('/r/') && !fromVictim(r)).map((r) => r.path);
    expect(others.length - new Set(others).size).toBe(0);
  });

  it('a Retry-After one process is given pauses the host for the others', async () => {
    const N = 24;
    for (let i = 0; i < N; i += 1) env.origin.set(`/p/${i}.pdf`, { body: samplePdf(`p ${i}`, 20_000), failFirst: i === 3 ? { times: 1, status: 429, retryAfter: '2' } : undefined });
    const manifest = await env.ws.file('p.jsonl', jsonl(Array.from({ length: N }, (_, i) => ({ id: `p${i}`, url: env.origin.url(`/p/${i}.pdf`) }))));
    const rl = await env.ws.file('rl4.yaml', 'version: 1\ndefaults:\n  artifact: {rates: ["4/SECOND"], max_delay_ms: 5000}\n');
    const out = join(env.ws.dir, 'p-out');
    const ledger = await ledgerFor(out);
    const before = env.origin.requests.length;
    const runs = await Promise.all([0, 1].map(() => runCli(['download', manifest, '-o', out, ...ledger.args, '--json', '--no-progress', '--ratelimits', rl, '--retry-delay', '10'])));
    for (const r of runs) expect(r.code, r.stderr).toBe(0);
    const reqs = env.origin.requests.slice(before);
    const paused = reqs.find((r) => r.status === 429)!.at;
    // A request already on its way when the pause was stored may still arrive; none after that.
    const during = reqs.filter((r) => r.at > paused + 300 && r.at < paused + 1950);
    expect(during.map((r) => `${r.path} +${r.at - paused} ms`)).toEqual([]);
    expect(reqs.filter((r) => r.at >= paused + 1950).length).toBeGreaterThan(0);
    expect(await ledger.count("SELECT COUNT(*) AS n FROM jobs WHERE state = 'done'")).toBe(N);
  });

  it("three processes never have more requests out to a host than its max_concurrent", async () => {
    const N = 24;
    for (let i = 0; i < N; i += 1) env.origin.set(`/cap/${i}.pdf`, { body: samplePdf(`cap ${i}`, 30_000), trickle: { chunk: 10_000, ms: 80 } });
    const manifest = await env.ws.file('cap.jsonl', jsonl(Array.from({ length: N }, (_, i) => ({ id: `cap${i}`, url: env.origin.url(`/cap/${i}.pdf`) }))));
    const rl = await env.ws.file('cap2.yaml', 'version: 1\ndefaults:\n  artifact: {rates: [], max_delay_ms: 5000, max_concurrent: 2}\n');
    const out = join(env.ws.dir, 'cap-out');
    const ledger = await ledgerFor(out);
    const before = env.origin.requests.length;
    const runs = await Promise.all([0, 1, 2].map(() => runCli(['download', manifest, '-o', out, ...ledger.args, '--json', '--no-progress', '-c', '4', '--ratelimits', rl])));
    for (const r of runs) expect(r.code, r.stderr).toBe(0);
    const reqs = env.origin.requests.slice(before).filter((r) => r.path.startsWith('/cap/'));
    expect(reqs).toHaveLength(N);
    // Each alone would have two out: together, still two. The origin ends a slow body one pause
    // after its last byte, which the client has by then: that pause is not the request's.
    const spans = reqs.map((r): [number, number] => [r.at, (r.finishedAt ?? r.at + 240) - 80]);
    expect(maxOverlap(spans), spans.map(([a, b]) => `${a - spans[0]![0]}-${b - spans[0]![0]}`).join(' ')).toBeLessThanOrEqual(2);
    expect(await ledger.count("SELECT COUNT(*) AS n FROM jobs WHERE state = 'done'")).toBe(N);
    expect(await ledger.count('SELECT COUNT(*) AS n FROM host_permits')).toBe(0);
  });
});

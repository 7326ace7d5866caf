import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { fromVictim, jsonl, originAndWorkspace, runCli, runWithVictim } from '../helpers/cli.js';
import { samplePdf, sha256Hex } from '../helpers/origin.js';
import { freshDatabase, queryPg } from '../helpers/postgres.js';
import { stagedNames } from '../helpers/staging.js';

async function objectsIn(out: string): Promise<string[]> {
  const names: string[] = [];
  for (const d of (await readdir(out)).filter((x) => /^[0-9a-f]{2}$/.test(x))) names.push(...(await readdir(join(out, d))));
  return names.sort();
}

async function waitFor(cond: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(20);
  }
}

/**
 * Makes the server refuse the first `count` writes of one kind to `table` with SQLSTATE `code`.
 * A sequence counts them: it advances outside transactions, so a rolled-back refusal counts too.
 */
async function refuseWrites(db: string, table: string, when: 'INSERT' | 'UPDATE', code: string, count: number): Promise<void> {
  await queryPg(db, `CREATE SEQUENCE fault_${table}`);
  await queryPg(db, `CREATE FUNCTION fault_${table}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF nextval('fault_${table}') <= ${count} THEN RAISE EXCEPTION 'injected' USING ERRCODE = '${code}'; END IF;
      RETURN NEW;
    END $$`);
  await queryPg(db, `CREATE TRIGGER fault_${table} BEFORE ${when} ON ${table} FOR EACH ROW EXECUTE FUNCTION fault_${table}()`);
}

/** A fleet on one PostgreSQL ledger: processes standing in for machines, each the real binary. */
describe('processes on one PostgreSQL ledger', () => {
  const env = originAndWorkspace();

  it('three processes started together fetch each URL once', async () => {
    const db = await freshDatabase();
    const N = 150;
    for (let i = 0; i < N; i += 1) env.origin.set(`/f/${i}.pdf`, { body: samplePdf(`f ${i}`, 40_000), trickle: { chunk: 20_000, ms: 5 } });
    const manifest = await env.ws.file('f.jsonl', jsonl(Array.from({ length: N }, (_, i) => ({ id: `f${i}`, url: env.origin.url(`/f/${i}.pdf`) }))));
    const out = join(env.ws.dir, 'f-out');
    const runs = await Promise.all([0, 1, 2].map(() => runCli(['download', manifest, '-o', out, '--db', db, '--json', '--no-progress', '-c', '8'])));
    for (const r of runs) expect(r.code, r.stderr).toBe(0);
    const perPath = new Map<string, number>();
    for (const r of env.origin.requests.filter((q) => q.path.startsWith('/f/'))) perPath.set(r.path, (perPath.get(r.path) ?? 0) + 1);
    expect(perPath.size).toBe(N);
    expect([...perPath.values()].every((c) => c === 1)).toBe(true);
    const downloaded = runs.flatMap((r) => r.records.filter((x) => x.status === 'downloaded'));
    expect(new Set(downloaded.map((r) => r.id)).size).toBe(N);
    expect(downloaded).toHaveLength(N);
    // Every process did some of the work.
    for (const r of runs) expect(r.records.some((x) => x.status === 'downloaded')).toBe(true);
    expect(await queryPg(db, 'SELECT state, COUNT(*)::int AS n FROM jobs GROUP BY state')).toEqual([{ state: 'done', n: N }]);
    expect(await queryPg(db, "SELECT COUNT(*)::int AS n FROM ops WHERE kind = 'finalize' AND state = 'done'")).toEqual([{ n: N }]);
    expect(await stagedNames(out)).toEqual([]);
  });

  it('kill -9 of one of three loses nothing: every item stored once, the ledger and the store agree', async () => {
    const db = await freshDatabase();
    const N = 90;
    const bodies = Array.from({ length: N }, (_, i) => samplePdf(`k ${i}`, i % 10 === 0 ? 600_000 : 30_000));
    for (let i = 0; i < N; i += 1) env.origin.set(`/k/${i}.pdf`, { body: bodies[i]!, etag: `"k${i}"`, ranges: true, trickle: { chunk: 15_000, ms: 20 } });
    const manifest = await env.ws.file('k.jsonl', jsonl(Array.from({ length: N }, (_, i) => ({ id: `k${i}`, url: env.origin.url(`/k/${i}.pdf`) }))));
    const out = join(env.ws.dir, 'k-out');
    const args = ['download', manifest, '-o', out, '--db', db, '--json', '--no-progress', '-c', '6', '--lease-ttl', '2'];
    const { runs, victim } = runWithVictim(args);
    await waitFor(async () => (await queryPg<{ n: number }>(db, "SELECT COUNT(*)::int AS n FROM jobs WHERE state = 'done'").catch(() => [{ n: 0 }]))[0]!.n >= 20);
    process.kill(victim(), 'SIGKILL');
    expect((await runs[0])!.signal).toBe('SIGKILL');
    const rest = await Promise.all(runs.slice(1));
    for (const r of rest) expect(r.code, r.stderr).toBe(0);
    // The killed process's leases expire; a run after that finishes what it held.
    const again = await runCli(args);
    expect(again.code, again.stderr).toBe(0);
    expect(await queryPg(db, 'SELECT state, COUNT(*)::int AS n FROM jobs GROUP BY state')).toEqual([{ state: 'done', n: N }]);
    expect(await objectsIn(out)).toEqual([...new Set(bodies.map((b) => `${sha256Hex(b)}.pdf`))].sort());
    const rec = await runCli(['reconcile', '-o', out, '--db', db, '--json', '--verify']);
    expect(JSON.parse(rec.stdout), rec.stderr).toMatchObject({ repaired: 0, consistent: true });
    // Only what the killed process had on the way may have been asked for twice: the other
    // processes together asked for each URL at most once.
    // (How many that was is not bounded by -c: an item off the network frees its slot while it
    // finishes, and until its finalize op is committed it is on the way too.)
    const full = env.origin.requests.filter((q) => q.path.startsWith('/k/') && q.status === 200);
    const byVictim = new Set(full.filter(fromVictim).map((q) => q.path));
    const byOthers = full.filter((q) => !fromVictim(q)).map((q) => q.path);
    expect(byOthers.length - new Set(byOthers).size).toBe(0);
    expect(new Set([...byVictim, ...byOthers]).size).toBe(N);
  });

  it('a lost database connection ends the run with exit 3, its leases left to expire; a later run finishes', async () => {
    const db = await freshDatabase();
    const N = 20;
    for (let i = 0; i < N; i += 1) env.origin.set(`/l/${i}.pdf`, { body: samplePdf(`l ${i}`, 60_000), trickle: { chunk: 10_000, ms: 100 } });
    const manifest = await env.ws.file('l.jsonl', jsonl(Array.from({ length: N }, (_, i) => ({ id: `l${i}`, url: env.origin.url(`/l/${i}.pdf`) }))));
    const out = join(env.ws.dir, 'l-out');
    const args = ['download', manifest, '-o', out, '--db', db, '--json', '--no-progress', '-c', '4', '--lease-ttl', '2'];
    const running = runCli(args);
    await waitFor(async () => (await queryPg<{ n: number }>(db, "SELECT COUNT(*)::int AS n FROM jobs WHERE state = 'active'").catch(() => [{ n: 0 }]))[0]!.n > 0);
    await queryPg(db, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'docstokg' AND datname = current_database()");
    const res = await running;
    expect(res.code, res.stderr).toBe(3);
    expect(res.stderr).toMatch(/ledger postgres:\/\/postgres:\*\*\*@.*terminat/i);
    expect((await queryPg<{ n: number }>(db, "SELECT COUNT(*)::int AS n FROM jobs WHERE state = 'active'"))[0]!.n).toBeGreaterThan(0);
    await sleep(2100);
    const again = await runCli(args);
    expect(again.code, again.stderr).toBe(0);
    expect(await queryPg(db, 'SELECT state, COUNT(*)::int AS n FROM jobs GROUP BY state')).toEqual([{ state: 'done', n: N }]);
    expect((await objectsIn(out)).length).toBe(N);
  });
  it('transient database errors (a serialization failure, a deadlock) are retried: the run finishes as if none had happened', async () => {
    const db = await freshDatabase();
    const N = 20;
    for (let i = 0; i < N; i += 1) env.origin.set(`/t/${i}.pdf`, { body: samplePdf(`t ${i}`, 20_000) });
    const empty = await env.ws.file('t-empty.txt', '');
    const out = join(env.ws.dir, 't-out');
    expect((await runCli(['download', empty, '-o', out, '--db', db])).code).toBe(0);
    // The server itself refuses the first writes of each kind, as it would under contention.
    await refuseWrites(db, 'attempts', 'INSERT', '40001', 3);
    await refuseWrites(db, 'jobs', 'UPDATE', '40P01', 3);
    const manifest = await env.ws.file('t.txt', Array.from({ length: N }, (_, i) => `${env.origin.url(`/t/${i}.pdf`)}\n`).join(''));
    const res = await runCli(['download', manifest, '-o', out, '--db', db, '--json', '--no-progress']);
    expect(res.code, res.stderr).toBe(0);
    expect(res.records.filter((r) => r.status === 'downloaded')).toHaveLength(N);
    for (const table of ['attempts', 'jobs']) {
      const [row] = await queryPg<{ n: number }>(db, `SELECT last_value AS n FROM fault_${table}`);
      expect(row!.n, `refusals injected on ${table}`).toBeGreaterThan(3);
    }
    expect(await queryPg(db, `SELECT state, count(*)::int AS n FROM jobs GROUP BY state`)).toEqual([{ state: 'done', n: N }]);
    expect((await queryPg<{ n: number }>(db, 'SELECT count(*)::int AS n FROM attempts'))[0]!.n).toBe(N);
    expect(await objectsIn(out)).toHaveLength(N);
  });

  it('a transient error that outlasts its retries ends the run with exit 3; a later run finishes', async () => {
    const db = await freshDatabase();
    env.origin.set('/u/1.pdf', { body: samplePdf('u 1', 20_000) });
    const out = join(env.ws.dir, 'u-out');
    expect((await runCli(['download', await env.ws.file('u-empty.txt', ''), '-o', out, '--db', db])).code).toBe(0);
    await refuseWrites(db, 'jobs', 'UPDATE', '40001', 1_000_000);
    const manifest = await env.ws.file('u.txt', `${env.origin.url('/u/1.pdf')}\n`);
    const refused = await runCli(['download', manifest, '-o', out, '--db', db, '--no-progress']);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/fatal: ledger postgres:\/\/[^\n]*: injected \(40001\)/);
    expect(refused.stderr).not.toMatch(/internal error/);
    await queryPg(db, 'DROP TRIGGER fault_jobs ON jobs');
    const later = await runCli(['download', manifest, '-o', out, '--db', db, '--json', '--no-progress']);
    expect(later.code, later.stderr).toBe(0);
    expect(later.records.map((r) => r.status)).toEqual(['downloaded']);
  });
});

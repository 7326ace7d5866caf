import { spawn } from 'node:child_process';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { jobKey } from '../../src/manifest/parse.js';
import { BIN, jsonl, originAndWorkspace, runCli } from '../helpers/cli.js';
import { queryLedger } from '../helpers/ledger.js';
import { samplePdf, sha256Hex, type Route } from '../helpers/origin.js';
import { partPath } from '../../src/store/paths.js';
import { freshDatabase, queryPg } from '../helpers/postgres.js';
import { stagedNames } from '../helpers/staging.js';
import { rng } from '../fixtures/rng.js';

/**
 * kill -9 of the real binary at random moments of a mixed manifest, then reconcile and re-run.
 * CRASH_CYCLES sets how many cycles (npm run crash-test runs 50); CRASH_SEED replays a sequence.
 */
const CYCLES = Number(process.env.CRASH_CYCLES ?? 8);
const SEED = Number(process.env.CRASH_SEED ?? Date.now() % 100_000);

interface Spec {
  id: string;
  path: string;
  body: Buffer;
  route: (n: number) => Route;
}

/** Small and large, with and without validators, chunked, flaky, and two ids sharing one body. */
function mixedManifest(cycle: number): Spec[] {
  const specs: Spec[] = [];
  const slow = { chunk: 64 * 1024, ms: 12 };
  const add = (id: string, body: Buffer, route: (n: number) => Omit<Route, 'body'>) =>
    specs.push({ id, path: `/c${cycle}/${id}`, body, route: (n) => ({ body, ...route(n) }) });
  for (let i = 0; i < 16; i += 1) add(`small${i}`, samplePdf(`c${cycle} small ${i}`, 6000 + i), () => ({}));
  for (let i = 0; i < 3; i += 1) add(`etag${i}`, samplePdf(`c${cycle} etag ${i}`, 1024 * 1024), (n) => ({ etag: `"c${cycle}e${i}"`, ranges: true, trickle: n === 1 ? slow : undefined }));
  add('lastmod', samplePdf(`c${cycle} lm`, 700_000), (n) => ({ lastModified: 'Tue, 01 Sep 2026 10:00:00 GMT', ranges: true, trickle: n === 1 ? slow : undefined }));
  add('noval', samplePdf(`c${cycle} noval`, 800_000), (n) => ({ ranges: true, trickle: n === 1 ? slow : undefined }));
  add('chunked', samplePdf(`c${cycle} chunked`, 500_000), (n) => ({ chunked: true, etag: `"c${cycle}ch"`, ranges: true, trickle: n === 1 ? slow : undefined }));
  add('flaky', samplePdf(`c${cycle} flaky`, 20_000), () => ({ failFirst: { times: 1, status: 503 } }));
  const shared = samplePdf(`c${cycle} shared`, 300_000);
  add('twinA', shared, (n) => ({ etag: `"c${cycle}tw"`, ranges: true, trickle: n === 1 ? slow : undefined }));
  add('twinB', shared, () => ({ etag: `"c${cycle}tw"`, ranges: true }));
  return specs;
}

/** Where a cycle's ledger is, and how the test reads it. */
interface LedgerUnderTest {
  args: string[];
  exists: () => Promise<boolean>;
  rows: <T>(sql: string) => Promise<T[]>;
}

const BACKENDS: [string, number, (out: string) => Promise<LedgerUnderTest>][] = [
  ['SQLite', CYCLES, async (out) => ({
    args: [],
    exists: () => stat(join(out, 'docstokg.sqlite')).then(() => true, () => false),
    rows: async <T>(sql: string) => queryLedger<T>(out, sql),
  })],
  ['PostgreSQL', Math.max(2, Math.ceil(CYCLES / 2)), async () => {
    const db = await freshDatabase();
    return {
      args: ['--db', db],
      exists: async () => (await queryPg<{ n: number }>(db, "SELECT COUNT(*)::int AS n FROM pg_tables WHERE tablename = 'docstokg_schema'"))[0]!.n > 0,
      rows: <T>(sql: string) => queryPg<T>(db, sql),
    };
  }],
];

describe.each(BACKENDS)(`crash harness on %s: %i kill -9 / reconcile / re-run cycles (seed ${SEED})`, (name, cycles, ledgerFor) => {
  const env = originAndWorkspace();
  const random = rng(SEED);

  it('ends every cycle with a consistent ledger and store', { timeout: 60_000 + cycles * 20_000 }, async () => {
    for (let cycle = 0; cycle < cycles; cycle += 1) {
      const specs = mixedManifest(cycle);
      for (const s of specs) env.origin.set(s.path, s.route);
      const manifest = await env.ws.file(`crash${cycle}.jsonl`, jsonl(specs.map((s) => ({ id: s.id, url: env.origin.url(s.path) }))));
      const out = join(env.ws.dir, `crash${cycle}`);
      const ledger = await ledgerFor(out);
      const args = ['download', manifest, '-o', out, ...ledger.args, '--link-dir', join(out, 'links'), '--retry-delay', '5', '-c', '6', '--no-progress', '-q'];
      const where = `${name} cycle ${cycle} (seed ${SEED})`;

      const t0 = Date.now();
      const log = (what: string) => process.env.CRASH_DEBUG && console.error(`${where} +${Date.now() - t0}ms ${what}`);
      // 1. kill -9 at a random moment
      const killAfter = Math.floor(30 + random() * 1200);
      const child = spawn(process.execPath, [BIN, ...args], { stdio: 'ignore' });
      const closed = new Promise((r) => child.on('close', r));
      await Promise.race([closed, new Promise((r) => setTimeout(r, killAfter))]);
      child.kill('SIGKILL');
      await closed;
      log(`killed after ${killAfter} ms`);

      // A part the ledger knows is complete (stream op done) is never asked for again; a complete
      // part with validators is only ever answered with 416 (no body).
      const streamed = new Set<string>();
      const complete = new Set<string>();
      const parts = await stagedNames(out);
      const hasDb = await ledger.exists();
      let doneStreams: { job_key: string; result: string }[] = [];
      try {
        if (hasDb) doneStreams = await ledger.rows("SELECT job_key, result FROM ops WHERE kind = 'stream' AND state = 'done'");
      } catch {
        // killed before the schema was committed: reconcile creates it
      }
      for (const s of specs) {
        const key = jobKey(s.id, [env.origin.url(s.path)]);
        if (!parts.includes(`${key}.part`)) continue;
        const size = (await stat(partPath(out, key))).size;
        if (size !== s.body.length) continue;
        if (doneStreams.some((o) => o.job_key === key && (JSON.parse(o.result) as { size: number }).size === size)) streamed.add(s.path);
        // Parts of 256 KiB and more commit their validators before their first byte.
        else if (/etag|lastmod|chunked|twin/.test(s.id) && s.body.length >= 256 * 1024) complete.add(s.path);
      }

      // 2. reconcile must leave ledger and store in agreement
      let doneBefore = new Set<string>();
      if (hasDb) {
        const rec = await runCli(['reconcile', '-o', out, ...ledger.args, '--json']);
        log('reconciled');
        expect(rec.code, `${where}: ${rec.stderr}${rec.stdout}`).toBe(0);
        doneBefore = new Set((await ledger.rows<{ item_id: string }>("SELECT item_id FROM jobs WHERE state = 'done'")).map((r) => r.item_id));
      }

      // 3. the same download completes everything
      const before = env.origin.requests.length;
      const rerun = await runCli([...args.filter((a) => a !== '-q'), '--json']);
      log('re-ran');
      expect(rerun.code, `${where}: ${rerun.stderr}`).toBe(0);
      const requests = env.origin.requests.slice(before);
      expect(rerun.records).toHaveLength(specs.length);
      for (const s of specs) {
        const r = rerun.records.find((x) => x.id === s.id)!;
        expect(r.sha256, `${where}: ${s.id}`).toBe(sha256Hex(s.body));
        expect((await readFile(join(out, r.path as string))).equals(s.body), `${where}: ${s.id} bytes`).toBe(true);
        const asked = requests.filter((q) => q.path === s.path);
        if (doneBefore.has(s.id)) {
          expect(r.status, `${where}: ${s.id}`).toBe('skipped');
          expect(asked, `${where}: ${s.id} fetched again`).toHaveLength(0);
        }
        if (streamed.has(s.path)) expect(asked, `${where}: streamed part ${s.id} fetched again`).toHaveLength(0);
        if (complete.has(s.path)) expect(asked.map((q) => q.status).filter((st) => st !== 416), `${where}: complete part ${s.id} fetched again`).toEqual([]);
      }

      // 4. no duplicate objects, no leftovers, links in place, and nothing left to repair
      const objects: string[] = [];
      for (const d of (await readdir(out)).filter((x) => /^[0-9a-f]{2}$/.test(x))) objects.push(...(await readdir(join(out, d))));
      expect(objects.sort(), where).toEqual([...new Set(specs.map((s) => `${sha256Hex(s.body)}.pdf`))].sort());
      expect(await stagedNames(out), where).toEqual([]);
      expect((await readdir(join(out, 'links'))).sort(), where).toEqual(specs.map((s) => `${s.id}.pdf`).sort());
      const final = await runCli(['reconcile', '-o', out, ...ledger.args, '--json', '--verify']);
      expect(JSON.parse(final.stdout), where).toMatchObject({ repaired: 0, consistent: true });
    }
  });
});

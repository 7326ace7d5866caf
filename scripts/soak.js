#!/usr/bin/env node
// npm run soak -- [--minutes 30] [--items 1500] [--seed N]
// Runs the real binary over generations of items against the fault origin (soak-origin.js) and
// kills it at random moments: kill -9 mid-run, a process stopped (SIGSTOP) past its lease while a
// second one takes its jobs and then continued, `reconcile` during a download, and a store on a
// small tmpfs that fills up mid-stream. After every kill, `reconcile`; at the end of a generation
// a clean run finishes it and the store is checked. The report: items stored right, corrupt,
// duplicated, lost, full bodies fetched twice (by how long before its kill the first was
// received), and bytes fetched beyond the corpus's size. Results go to bench/.out/soak.md.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { rng } from '../dist/fixtures/rng.js';
import { safeName } from '../dist/store/link.js';
import { Corpus, startSoakOrigin } from './soak-origin.js';

const ROOT = resolve(import.meta.dirname, '..');
const BIN = join(ROOT, 'bin', 'docstokg.js');
const WORK = join(ROOT, 'bench', '.out', 'soak');
const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : dflt;
};
const MINUTES = Number(opt('minutes', 30));
const ITEMS = Number(opt('items', 1500));
const SEED = Number(opt('seed', Date.now() % 1_000_000));
const HOSTS = ['127.0.0.21', '127.0.0.22', '127.0.0.23', '127.0.0.24'];
const PORT = Number(opt('port', 18_190));
const LEASE_S = 2;

const random = rng(SEED);
const between = (a, b) => a + random() * (b - a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

rmSync(WORK, { recursive: true, force: true });
mkdirSync(WORK, { recursive: true });
const policy = join(WORK, 'ratelimits.yaml');
writeFileSync(policy, 'version: 1\ndefaults:\n  artifact: {rates: ["60/SECOND"], max_delay_ms: 2000, max_concurrent: 8}\n');
const breakers = join(WORK, 'breakers.yaml');
writeFileSync(breakers, 'version: 1\ndefaults: {fail_max: 12, reset_timeout_s: 2, retry_after_cap_s: 30}\n');

/** One docstokg process: its label (the User-Agent the origin logs), when it ended, and how. */
const processes = new Map();

function download(out, manifest, label, extra = []) {
  const args = ['download', manifest, '-o', out, '--link-dir', join(out, 'links'), '--ratelimits', policy, '--breakers', breakers,
    '-c', '16', '--per-host', '8', '--retry-delay', '100', '--lease-ttl', String(LEASE_S), '--no-progress', '--json', '--log-format', 'json',
    '--user-agent', label, ...extra];
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  const log = createWriteStream(join(WORK, `${label}.log`));
  child.stderr.pipe(log);
  const info = { label, killedAt: null, stoppedAt: null, endedAt: null, code: null };
  processes.set(label, info);
  info.done = new Promise((r) => child.on('close', (code, signal) => {
    info.endedAt = Date.now();
    info.code = code ?? signal;
    r(info);
  }));
  info.kill = (signal = 'SIGKILL') => {
    if (signal === 'SIGKILL' && info.endedAt === null) info.killedAt = Date.now();
    if (signal === 'SIGSTOP') info.stoppedAt = Date.now();
    child.kill(signal);
  };
  return info;
}

function cli(args) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function reconcile(out, where) {
  // A process killed before it made the ledger left nothing to repair.
  if (!existsSync(join(out, 'docstokg.sqlite'))) return;
  const r = cli(['reconcile', '-o', out, '--json']);
  if (r.code !== 0) problems.push(`${where}: reconcile exit ${r.code}: ${r.stderr.trim().split('\n').pop()}`);
}

const problems = [];
const totals = { generations: 0, items: 0, stored_right: 0, corrupt: 0, duplicated: 0, lost: 0, kills: 0, stops: 0, reconciles_during: 0, full_twice_old: 0, full_twice_recent: 0, bytes_sent: 0, corpus_bytes: 0, finalized_twice: 0 };
const diskFull = { runs: 0, exits: {}, corrupt: 0, objects: 0 };

/** kill -9 at a random moment, then reconcile. */
async function killCycle(g, out, manifest, n) {
  const p = download(out, manifest, `soak-g${g}-k${n}`);
  const at = between(300, 6000);
  await Promise.race([p.done, sleep(at)]);
  p.kill();
  await p.done;
  if (p.killedAt) totals.kills += 1;
  reconcile(out, p.label);
}

/** A process stopped past its lease while another takes its jobs, then continued; both killed. */
async function stopCycle(g, out, manifest, n) {
  const a = download(out, manifest, `soak-g${g}-s${n}a`);
  await Promise.race([a.done, sleep(between(500, 3000))]);
  a.kill('SIGSTOP');
  await sleep(LEASE_S * 1000 + 1000);
  const b = download(out, manifest, `soak-g${g}-s${n}b`);
  await Promise.race([b.done, sleep(between(1000, 4000))]);
  a.kill('SIGCONT');
  await Promise.race([Promise.all([a.done, b.done]), sleep(between(1000, 4000))]);
  a.kill();
  b.kill();
  await Promise.all([a.done, b.done]);
  totals.stops += 1;
  reconcile(out, a.label);
}

/** `reconcile` while a download runs (it must leave live leases alone), then kill -9. */
async function reconcileDuringCycle(g, out, manifest, n) {
  const p = download(out, manifest, `soak-g${g}-r${n}`);
  await Promise.race([p.done, sleep(between(500, 3000))]);
  const r = await new Promise((done) => {
    const c = spawn(process.execPath, [BIN, 'reconcile', '-o', out, '--json'], { stdio: 'ignore' });
    c.on('close', done);
  });
  if (r !== 0 && r !== 1) problems.push(`soak-g${g}-r${n}: reconcile during a download exit ${r}`);
  await Promise.race([p.done, sleep(between(200, 3000))]);
  p.kill();
  await p.done;
  totals.reconciles_during += 1;
  reconcile(out, p.label);
}

function sha256File(path) {
  return new Promise((done, fail) => {
    const h = createHash('sha256');
    createReadStream(path).on('data', (d) => h.update(d)).on('end', () => done(h.digest('hex'))).on('error', fail);
  });
}

async function checkObjects(out) {
  const objects = new Map();
  let corrupt = 0;
  for (const d of readdirSync(out).filter((x) => /^[0-9a-f]{2}$/.test(x))) {
    for (const f of readdirSync(join(out, d))) {
      const sha = f.replace(/\.pdf$/, '');
      objects.set(sha, join(out, d, f));
      if ((await sha256File(join(out, d, f))) !== sha) corrupt += 1;
    }
  }
  return { objects, corrupt };
}

/** Finalize ops a process executed, by job, from its JSON event log. */
function finalizeCounts() {
  const perOp = new Map();
  for (const f of readdirSync(WORK).filter((x) => x.endsWith('.log'))) {
    for (const line of readFileSync(join(WORK, f), 'utf8').split('\n')) {
      if (!line.includes('"finalize"') || !line.includes('"executed"')) continue;
      try {
        const e = JSON.parse(line);
        perOp.set(e.op, (perOp.get(e.op) ?? 0) + 1);
      } catch {
        // the last line of a killed process may be cut
      }
    }
  }
  return perOp;
}

/**
 * Full bodies the origin sent more than once for one version of one item, sorted by how long
 * before the end of its process the first one had been sent in full.
 */
function fullTwice(log, corpus) {
  const byKey = new Map();
  for (const e of log) {
    if (!e.full || !corpus.byPath.has(e.path)) continue;
    const k = `${e.path} v${e.version}`;
    byKey.set(k, [...(byKey.get(k) ?? []), e]);
  }
  const out = { old: 0, recent: 0, examples: [] };
  for (const [k, list] of byKey) {
    for (let i = 1; i < list.length; i += 1) {
      const first = list[i - 1];
      const p = processes.get(first.ua);
      // A process stopped (SIGSTOP) received nothing more from then on: that is its crash.
      const crash = p?.stoppedAt ?? p?.killedAt;
      const age = crash ? crash - first.finishedAt : Infinity;
      if (age > 1000) {
        out.old += 1;
        const how = p?.stoppedAt ? 'its stop' : p?.killedAt ? 'its kill' : `a run that ended (exit ${p?.code})`;
        if (out.examples.length < 5) out.examples.push(`${k}: sent by ${first.ua} ${crash ? `${age} ms before ${how}` : `in ${how}`}, again by ${list[i].ua}`);
      } else out.recent += 1;
    }
  }
  return out;
}

async function generation(g, deadline) {
  const corpus = new Corpus(g, ITEMS, random);
  corpusRef.current = corpus;
  const out = join(WORK, `g${g}`);
  const manifest = join(WORK, `g${g}.txt`);
  writeFileSync(manifest, corpus.items.map((it, i) => `http://${HOSTS[i % HOSTS.length]}:${PORT}${it.path}`).join('\n') + '\n');
  // Ids are the URLs: the item behind a record is found by its path.
  const logStart = origin.log.length;
  for (let n = 0; Date.now() < deadline; n += 1) {
    const r = random();
    if (r < 0.6) await killCycle(g, out, manifest, n);
    else if (r < 0.8) await stopCycle(g, out, manifest, n);
    else await reconcileDuringCycle(g, out, manifest, n);
    const left = cli(['status', '-o', out, '--json']);
    try {
      const s = JSON.parse(left.stdout);
      if ((s.states?.done ?? 0) >= ITEMS * 0.9) break;
    } catch {
      // no ledger yet
    }
  }
  // The end of the generation: one clean run finishes it.
  const final = download(out, manifest, `soak-g${g}-final`);
  await final.done;
  if (final.code !== 0) problems.push(`g${g}: final run exit ${final.code}`);
  const records = cli(['export', '-o', out]).stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const { objects, corrupt } = await checkObjects(out);
  const referenced = new Set();
  let right = 0;
  let lost = 0;
  const byPath = new Map(records.map((r) => [new URL(r.canonical_url).pathname, r]));
  for (const it of corpus.items) {
    const rec = byPath.get(it.path);
    const versions = new Set([...it.versions.values()].map((v) => v.sha256));
    if (!rec?.sha256 || !objects.has(rec.sha256)) {
      lost += 1;
      continue;
    }
    referenced.add(rec.sha256);
    const link = statSync(join(out, 'links', safeName(rec.id)), { throwIfNoEntry: false });
    if (versions.has(rec.sha256) && link?.ino === statSync(objects.get(rec.sha256)).ino) right += 1;
    else problems.push(`g${g}: ${it.path} stored ${rec.sha256}${versions.has(rec.sha256) ? ', its link is wrong' : ', not one of its versions'}`);
  }
  const strays = [...objects.keys()].filter((s) => !referenced.has(s)).length;
  const twice = fullTwice(origin.log.slice(logStart), corpus);
  for (const e of twice.examples) problems.push(`g${g}: full body fetched twice: ${e}`);
  const sent = origin.log.slice(logStart).filter((e) => corpus.byPath.has(e.path)).reduce((a, e) => a + e.sent, 0);
  const size = corpus.items.reduce((a, it) => a + it.size, 0);
  totals.generations += 1;
  totals.items += corpus.items.length;
  totals.stored_right += right;
  totals.corrupt += corrupt;
  totals.duplicated += strays;
  totals.lost += lost;
  totals.full_twice_old += twice.old;
  totals.full_twice_recent += twice.recent;
  totals.bytes_sent += sent;
  totals.corpus_bytes += size;
  console.log(`g${g}: ${right}/${corpus.items.length} stored right, ${corrupt} corrupt, ${strays} stray objects, ${lost} lost; full bodies twice: ${twice.old} received >1 s before a kill, ${twice.recent} within 1 s; ${((sent / size - 1) * 100).toFixed(1)}% bytes beyond the corpus`);
  rmSync(out, { recursive: true, force: true });
}

/** A store on a small tmpfs: the disk fills up mid-stream. Exit 3 (or quota), never a corrupt object. */
async function diskFullCycle(g) {
  const dir = join(WORK, `tmpfs${g}`);
  mkdirSync(dir, { recursive: true });
  if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', dir]).status !== 0) return false;
  try {
    const corpus = new Corpus(`f${g}`, 40, random);
    corpusRef.current = corpus;
    const manifest = join(WORK, `f${g}.txt`);
    writeFileSync(manifest, corpus.items.map((it, i) => `http://${HOSTS[i % HOSTS.length]}:${PORT}${it.path}`).join('\n') + '\n');
    const p = download(dir, manifest, `soak-f${g}`, ['--min-free', '1MiB', '--db', join(WORK, `f${g}.sqlite`)]);
    await p.done;
    diskFull.runs += 1;
    diskFull.exits[p.code] = (diskFull.exits[p.code] ?? 0) + 1;
    const { objects, corrupt } = await checkObjects(dir);
    diskFull.objects += objects.size;
    diskFull.corrupt += corrupt;
    return true;
  } finally {
    spawnSync('umount', [dir]);
    rmSync(dir, { recursive: true, force: true });
  }
}

const corpusRef = { current: null };
const origin = await startSoakOrigin(corpusRef, HOSTS, PORT);
const started = Date.now();
const end = started + MINUTES * 60_000;
console.log(`soak: ${MINUTES} min, ${ITEMS} items a generation, seed ${SEED}`);
let tmpfs = true;
try {
  for (let g = 0; Date.now() < end; g += 1) {
    if (tmpfs && g % 2 === 1) tmpfs = await diskFullCycle(g);
    await generation(g, Math.min(end, Date.now() + 8 * 60_000));
  }
} finally {
  await origin.close();
}
const perOp = finalizeCounts();
totals.finalized_twice = [...perOp.values()].filter((n) => n > 1).length;
const minutes = ((Date.now() - started) / 60_000).toFixed(1);
const report = [
  `# Soak: ${minutes} minutes, seed ${SEED}, ${new Date().toISOString()}`,
  '',
  `${totals.generations} generations of ${ITEMS} items (${HOSTS.length} hosts; drops, 503s, changing content, slow bodies, servers without ranges or validators);`,
  `${totals.kills} kill -9, ${totals.stops} processes stopped past their lease and continued, ${totals.reconciles_during} reconciles during a download, each followed by reconcile.`,
  '',
  '| measure | count |',
  '|---|---|',
  `| items | ${totals.items} |`,
  `| stored right (one of its versions, whole, linked) | ${totals.stored_right} |`,
  `| corrupt objects | ${totals.corrupt} |`,
  `| duplicated (objects no item holds) | ${totals.duplicated} |`,
  `| finalize ops executed twice | ${totals.finalized_twice} |`,
  `| lost | ${totals.lost} |`,
  `| full bodies fetched twice, first received > 1 s before its kill | ${totals.full_twice_old} |`,
  `| full bodies fetched twice, first received within 1 s of its kill | ${totals.full_twice_recent} |`,
  `| bytes fetched beyond the corpus's size | ${((totals.bytes_sent / totals.corpus_bytes - 1) * 100).toFixed(1)}% (${(totals.bytes_sent / 1e9).toFixed(2)} GB for ${(totals.corpus_bytes / 1e9).toFixed(2)} GB) |`,
  `| disk-full runs (8 MiB tmpfs) | ${diskFull.runs}: exit codes ${JSON.stringify(diskFull.exits)}, ${diskFull.objects} objects, ${diskFull.corrupt} corrupt |`,
  '',
  problems.length ? `Problems:\n${problems.map((p) => `- ${p}`).join('\n')}` : 'No problems.',
].join('\n');
console.log(`\n${report}`);
writeFileSync(join(ROOT, 'bench', '.out', 'soak.md'), `${report}\n`);
process.exit(problems.length || totals.corrupt || totals.lost || totals.duplicated || totals.full_twice_old ? 1 : 0);

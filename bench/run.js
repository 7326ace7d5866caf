#!/usr/bin/env node
// npm run bench [-- --runs 5 --sets small,medium,large --protocols http,https,h2 --no-scale --no-many-hosts --no-fleet --no-s3 --latencies 50,200,1000]
// Measures docstokg against curl --parallel, aria2c, wget and Node.js floors (floor.js) on the
// same sets, served by a local nginx (a node:http static server when nginx is not installed) over
// plain HTTP, HTTPS with HTTP/1.1 only, and HTTPS offering HTTP/2 (self-signed certificate).
// Every timed run writes into a new directory after a `sync` (outputs.js says where and why);
// tools alternate; medians and ratios come from the same run.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { sets, makeFile, makeSets } from './datasets.js';
import { connectionUse, startServer } from './server.js';
import { scaleBenchmarks } from './scale.js';
import { manyHostsBenchmark } from './many-hosts.js';
import { fleetBenchmark } from './fleet.js';
import { s3Benchmark } from './s3.js';
import { Outputs } from './outputs.js';

const ROOT = resolve(import.meta.dirname, '..');
const DATA = join(ROOT, 'bench', '.data');
const OUT = join(ROOT, 'bench', '.out');
const BIN = join(ROOT, 'bin', 'docstokg.js');
const FLOOR = join(ROOT, 'bench', 'floor.js');
/** The floor also runs on one thread per core: what transfers on worker threads would cost at least. */
const THREADS = cpus().length;
const CONCURRENCY = 16;

const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : dflt;
};
const RUNS = Number(opt('runs', 5));
// `--sets none` runs only the scale, start-up and resume measures.
const SETS = opt('sets', 'small,medium,large').split(',').filter((s) => s !== 'none');
const SCALE = !argv.includes('--no-scale');
const MANY_HOSTS = !argv.includes('--no-many-hosts');
const FLEET = !argv.includes('--no-fleet');
const S3 = !argv.includes('--no-s3');
const LATENCIES = opt('latencies', '50,200,1000').split(',').map(Number);
const PROTOCOLS = opt('protocols', 'http,https,h2').split(',');
const PROTOCOL_LABEL = { http: 'HTTP/1.1', https: 'HTTPS, HTTP/1.1', h2: 'HTTPS, HTTP/2 offered' };

const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Runs a shell command under GNU time; returns wall ms (measured here) and peak RSS in KiB. */
function timed(cmd, env = {}) {
  const rssFile = join(OUT, 'rss.txt');
  const t0 = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-f', '%M', '-o', rssFile, 'bash', '-c', cmd], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`failed (${r.status}): ${cmd}\n${r.stderr}`);
  return { wallMs, rssKiB: Number(readFileSync(rssFile, 'utf8').trim().split('\n').pop()) };
}

const outputs = new Outputs(OUT);
const fresh = (dir) => outputs.fresh(dir);

/** The flags that make each client trust the bench's certificate (none over plain HTTP). */
function trust(cert) {
  if (!cert) return { docstokg: '', curl: '', aria: '', wget: '', floor: '' };
  return { docstokg: `--ca-file ${cert}`, curl: `--cacert ${cert}`, aria: `--ca-certificate=${cert}`, wget: `--ca-certificate=${cert}`, floor: `NODE_EXTRA_CA_CERTS=${cert} ` };
}

function tools(set, base, cert, h2) {
  const ca = trust(cert);
  const dir = join(OUT, 'dl');
  const urls = set.files.map((f) => `${base}/${set.name}/${f}`);
  const curlCfg = join(OUT, `${set.name}.curl`);
  writeFileSync(curlCfg, urls.map((u, i) => `url = "${u}"\noutput = "${dir}/${set.files[i]}"\n`).join(''));
  const ariaIn = join(OUT, `${set.name}.aria2`);
  writeFileSync(ariaIn, urls.map((u) => `${u}\n`).join(''));
  const manifest = join(OUT, `${set.name}.txt`);
  writeFileSync(manifest, urls.map((u) => `${u}\n`).join(''));
  const wgetIn = join(OUT, `${set.name}.wget`);
  writeFileSync(wgetIn, urls.map((u) => `${u}\n`).join(''));
  const policy = `--ratelimits ${join(ROOT, 'bench', 'ratelimits.bench.yaml')} --breakers ${join(ROOT, 'bench', 'breakers.bench.yaml')}`;
  const docstokg = (extra) =>
    `node ${BIN} download ${manifest} -o ${dir} -c ${CONCURRENCY} --per-host ${CONCURRENCY} ${policy} --no-progress -q --min-free 0 ${ca.docstokg} ${extra}`;
  const curl = `curl --silent --fail --parallel --parallel-max ${CONCURRENCY} --parallel-immediate ${ca.curl} --config ${curlCfg}`;
  const aria = `aria2c --quiet -j${CONCURRENCY} -x1 --max-connection-per-server=${CONCURRENCY} --file-allocation=none --allow-overwrite=true ${ca.aria} -d ${dir} -i ${ariaIn}`;
  const wget = `wget --quiet ${ca.wget} -P ${dir} -i ${wgetIn}`;
  // Where HTTP/2 is offered the floor takes it (undici's allowH2), as docstokg --http2 does.
  const floor = (extra) => `${ca.floor}node ${FLOOR} ${manifest} ${dir} ${h2 ? '--h2' : ''} ${extra}`;
  const durable = {
    docstokg: docstokg(''),
    'curl+sha256sum+sync': `${curl} && sha256sum ${dir}/* > /dev/null && sync`,
    ...(h2 ? { 'docstokg --http2': docstokg('--http2') } : {}),
    'node floor --fsync': floor('--fsync'),
    ...(THREADS > 1 ? { [`node floor --fsync, ${THREADS} threads`]: floor(`--fsync --threads ${THREADS}`) } : {}),
    'node floor --fsync --raw': floor('--fsync --raw'),
    ...(has('aria2c') ? { 'aria2c+sync': `${aria} && sync` } : {}),
  };
  const pagecache = {
    'docstokg --no-fsync': docstokg('--no-fsync'),
    curl,
    ...(h2 ? { 'docstokg --no-fsync --http2': docstokg('--no-fsync --http2') } : {}),
    'node floor': floor(''),
    ...(THREADS > 1 ? { [`node floor, ${THREADS} threads`]: floor(`--threads ${THREADS}`) } : {}),
    'node floor --raw': floor('--raw'),
    ...(has('aria2c') ? { aria2c: aria } : {}),
    ...(has('wget') && set.name !== 'small' ? { 'wget (sequential)': wget } : {}),
  };
  return { dir, manifest, durable, pagecache };
}

function measure(pairing, dir) {
  const names = Object.keys(pairing);
  const results = Object.fromEntries(names.map((n) => [n, []]));
  for (let run = 0; run < RUNS; run += 1) {
    // Alternate the order so no tool always runs first (or right after another's writeback).
    const order = run % 2 ? [...names].reverse() : names;
    for (const name of order) {
      fresh(dir);
      results[name].push(timed(pairing[name]));
    }
  }
  return results;
}

function report(title, set, results) {
  const bytes = set.files.length * set.size;
  const lines = [`\n### ${title}: ${set.files.length} × ${set.label} (${RUNS} runs each, concurrency ${CONCURRENCY})`, '', '| tool | median wall | files/s | MB/s | peak RSS | docstokg / tool | same round: median (range) | tool / curl |', '|---|---|---|---|---|---|---|---|'];
  // The pairing's first tool is docstokg and its second the curl reference the targets are set against.
  const [ours, reference] = Object.keys(results);
  const medianOf = (name) => median(results[name].map((r) => r.wallMs));
  for (const [name, rs] of Object.entries(results)) {
    const wall = medianOf(name);
    const rss = Math.max(...rs.map((r) => r.rssKiB)) / 1024;
    const ratio = name === ours ? '' : `${(medianOf(ours) / wall).toFixed(2)}×`;
    const vsCurl = name === reference ? '' : `${(wall / medianOf(reference)).toFixed(2)}×`;
    lines.push(`| ${name} | ${(wall / 1000).toFixed(2)} s | ${(set.files.length / (wall / 1000)).toFixed(0)} | ${(bytes / 1e6 / (wall / 1000)).toFixed(0)} | ${rss.toFixed(0)} MB | ${ratio} | ${name === ours ? '' : sameRound(results[ours], rs)} | ${vsCurl} |`);
  }
  return lines.join('\n');
}

/**
 * docstokg's time over the tool's within each round (every tool runs once a round, one after
 * another), as the median and range of those ratios: a machine whose speed drifts during a
 * benchmark moves both times of a round together, which the ratio of two medians does not cancel.
 */
function sameRound(ours, theirs) {
  const ratios = ours.map((r, i) => r.wallMs / theirs[i].wallMs);
  return `${median(ratios).toFixed(2)}× (${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)})`;
}

/** One more run of each client over TLS, to read from nginx's log how it used connections. */
function connections(t, tlsLog) {
  const lines = ['', '| client | requests | connections | TLS sessions resumed | HTTP versions |', '|---|---|---|---|---|'];
  for (const [name, cmd] of Object.entries(t.pagecache)) {
    fresh(t.dir);
    writeFileSync(tlsLog, '');
    timed(cmd);
    const u = connectionUse(tlsLog);
    lines.push(`| ${name} | ${u.requests} | ${u.connections} | ${u.resumed} | ${u.protocols} |`);
  }
  return lines.join('\n');
}

mkdirSync(OUT, { recursive: true });
console.log(`docstokg benchmark: ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}; ${new Date().toISOString()}`);
makeSets(DATA, SETS);
if (SCALE) makeFile(DATA, 'large', 0);
const server = await startServer(DATA, OUT);
console.log(`origin: ${server.kind} on ${server.base}`);
if (!outputs.spreads) console.log('chattr +T failed: output directories are placed beside earlier ones (see bench/outputs.js)');
const out = [];
try {
  for (const proto of PROTOCOLS.filter((p) => server.bases[p])) {
    for (const name of SETS) {
      const set = sets[name];
      const t = tools(set, server.bases[proto], proto === 'http' ? null : server.cert, proto === 'h2');
      out.push(report(`durable, ${PROTOCOL_LABEL[proto]}`, set, measure(t.durable, t.dir)));
      console.log(out.at(-1));
      out.push(report(`page cache, ${PROTOCOL_LABEL[proto]}`, set, measure(t.pagecache, t.dir)));
      console.log(out.at(-1));
      if (proto !== 'http') {
        out.push(connections(t, server.tlsLog));
        console.log(out.at(-1));
      }
    }
  }
  if (S3) {
    for (const name of SETS.filter((n) => n !== 'large')) {
      const t = tools(sets[name], server.bases.http, null, false);
      out.push(await s3Benchmark({ out: OUT, bin: BIN, set: sets[name], manifest: t.manifest, median, runs: Math.min(RUNS, 3) }));
      console.log(out.at(-1));
    }
  }
  if (MANY_HOSTS) {
    for (const protocol of PROTOCOLS.filter((p) => p === 'http' || p === 'https')) {
      const many = await manyHostsBenchmark({ root: ROOT, out: OUT, bin: BIN, median, runs: Math.min(RUNS, 3), latencies: LATENCIES, protocol });
      out.push(many);
      console.log(many);
    }
  }
  if (FLEET) {
    const fleet = await fleetBenchmark({ root: ROOT, out: OUT, bin: BIN, median, runs: Math.min(RUNS, 3) });
    out.push(fleet);
    console.log(fleet);
    // Few hosts with many items each: the hosts' pace binds with two processes already.
    const paced = await fleetBenchmark({ root: ROOT, out: OUT, bin: BIN, median, runs: Math.min(RUNS, 3), ledgers: ['postgres'], hosts: 50, perHostItems: 20 });
    out.push(paced);
    console.log(paced);
  }
  if (SCALE) {
    const scale = await scaleBenchmarks({ root: ROOT, out: OUT, bin: BIN, server, timed, fresh, median });
    out.push(scale);
    console.log(scale);
  }
} finally {
  await server.close();
  outputs.clear();
}
writeFileSync(join(OUT, 'results.md'), `${out.join('\n')}\n`);
console.log(`\nwritten to ${join(OUT, 'results.md')}`);

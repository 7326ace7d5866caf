#!/usr/bin/env node
// The many-hosts scenario: a skewed corpus over many loopback hosts (127.0.1.x), each host paced
// at RATE requests per second by ratelimits.yaml, each answer starting LATENCY ms after its
// request arrives. Reports docstokg's network time (first arrival to last answer, by the origin's
// clock) against the politeness bound
//   max(items × latency / concurrency, (largest host's items − 1) / rate + latency)
// and the most requests any host received in any one-second window, by the origin's clock.
// With --protocols http,https it runs over plain HTTP and then over HTTPS (one self-signed
// certificate for every host, trusted with --ca-file), and reports the TLS handshakes the origin
// saw and how many of them resumed a session.
//   node bench/many-hosts.js [--runs 3] [--latencies 50,200,1000] [--protocols http,https]
import { spawnSync, fork } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { makeCertificate } from './tls.js';

const HOSTS = 120;
const PORT = 18_090;
const RATE = 2;
const CONCURRENCY = 16;
const PER_HOST = 4;

/** Items per host: a few hosts hold most of them, as in an OpenAlex export (400 in all). */
export function corpus() {
  const counts = [40, 30, 20, 15, 12];
  for (let i = counts.length; i < HOSTS; i += 1) counts.push(i < 58 ? 3 : 2);
  return counts;
}

/** The manifest's lines in a fixed shuffled order (a seeded generator). */
export function manifestLines(counts, port = PORT, scheme = 'http') {
  const urls = counts.flatMap((n, h) => Array.from({ length: n }, (_, i) => `${scheme}://127.0.1.${h + 1}:${port}/w/${h}-${i}.pdf`));
  let seed = 42;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let i = urls.length - 1; i > 0; i -= 1) {
    const j = Math.floor(rnd() * (i + 1));
    [urls[i], urls[j]] = [urls[j], urls[i]];
  }
  return urls;
}

export function bound(counts, latencyMs) {
  const items = counts.reduce((a, b) => a + b, 0);
  return Math.max((items * latencyMs) / CONCURRENCY, ((Math.max(...counts) - 1) / RATE) * 1000 + latencyMs);
}

/** The most arrivals of one host in any window of `ms`, wherever it is placed. */
export function maxInWindow(times, ms) {
  const t = [...times].sort((a, b) => a - b);
  let best = 0;
  for (let i = 0, j = 0; i < t.length; i += 1) {
    while (t[i] - t[j] >= ms) j += 1;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

/** Sends `message` and resolves with the answer's `key`, or with the whole answer without one. */
export function ask(child, message, key) {
  return new Promise((res) => {
    const on = (m) => {
      if (key === undefined || m[key] !== undefined) {
        child.off('message', on);
        res(key === undefined ? m : m[key]);
      }
    };
    child.on('message', on);
    child.send(message);
  });
}

export async function manyHostsBenchmark({ root, out, bin, median, runs = 3, latencies = [50, 200, 1000], protocol = 'http' }) {
  const dir = join(out, 'many-hosts');
  mkdirSync(dir, { recursive: true });
  const counts = corpus();
  const tls = protocol === 'https' ? makeCertificate(dir, { name: 'many-hosts', ips: counts.map((_, h) => `127.0.1.${h + 1}`) }) : null;
  const manifest = join(dir, `manifest-${protocol}.txt`);
  writeFileSync(manifest, `${manifestLines(counts, PORT, protocol).join('\n')}\n`);
  const rl = join(dir, 'ratelimits.yaml');
  writeFileSync(rl, `version: 1\ndefaults:\n  artifact: {rates: ["${RATE}/SECOND"], max_delay_ms: 2000, max_concurrent: ${PER_HOST}}\n`);
  const originArgs = [String(HOSTS), String(PORT), '200', ...(tls ? [tls.cert, tls.key] : [])];
  const origin = fork(join(root, 'bench', 'many-hosts-origin.js'), originArgs, { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  await new Promise((res) => origin.once('message', res));
  const items = counts.reduce((a, b) => a + b, 0);
  const lines = [
    `\n### many hosts${tls ? ' over HTTPS' : ''}: ${items} items over ${HOSTS} loopback hosts (largest ${Math.max(...counts)}), ${RATE}/s per host, -c ${CONCURRENCY} --per-host ${PER_HOST} (${runs} runs each)`,
    '',
    `| server latency | bound | docstokg network time (median) | range | docstokg / bound | wall (median) | most requests to one host in any 1 s |${tls ? ' TLS handshakes (resumed), median |' : ''}`,
    `|---|---|---|---|---|---|---|${tls ? '---|' : ''}`,
  ];
  try {
    for (const latency of latencies) {
      const nets = [];
      const walls = [];
      const shakes = [];
      let worst = 0;
      for (let run = 0; run < runs; run += 1) {
        const o = join(dir, 'out');
        rmSync(o, { recursive: true, force: true });
        await ask(origin, { latency }, 'started');
        const t0 = performance.now();
        const trust = tls ? ['--ca-file', tls.cert] : [];
        const r = spawnSync('node', [bin, 'download', manifest, '-o', o, '-c', String(CONCURRENCY), '--per-host', String(PER_HOST), '--ratelimits', rl, '--no-progress', '-q', '--min-free', '0', ...trust], { stdio: ['ignore', 'ignore', 'pipe'] });
        walls.push(performance.now() - t0);
        if (r.status !== 0) throw new Error(`docstokg failed (${r.status}): ${r.stderr}`);
        const { log, handshakes } = await ask(origin, { collect: true });
        if (log.length !== items) throw new Error(`expected ${items} requests, the origin saw ${log.length}`);
        const round = roundStats(log);
        nets.push(round.net);
        shakes.push(handshakes);
        worst = Math.max(worst, round.worst);
      }
      const b = bound(counts, latency);
      const net = median(nets);
      const shook = tls ? ` ${median(shakes.map((h) => h.full + h.resumed))} (${median(shakes.map((h) => h.resumed))}) |` : '';
      lines.push(
        `| ${latency} ms | ${(b / 1000).toFixed(2)} s | ${(net / 1000).toFixed(2)} s | ${(Math.min(...nets) / 1000).toFixed(2)}-${(Math.max(...nets) / 1000).toFixed(2)} s | ${(net / b).toFixed(3)}× | ${(median(walls) / 1000).toFixed(2)} s | ${worst} (limit ${RATE}) |${shook}`,
      );
      console.error(lines.at(-1));
    }
  } finally {
    origin.send({ exit: true });
  }
  return lines.join('\n');
}

/**
 * One round from the origin's log: the network time (first arrival to last answer) and the most
 * requests any host received in any one-second window.
 */
export function roundStats(log) {
  const byHost = new Map();
  for (const [h, at] of log) byHost.set(h, [...(byHost.get(h) ?? []), at]);
  let worst = 0;
  for (const times of byHost.values()) worst = Math.max(worst, maxInWindow(times, 1000));
  return { net: Math.max(...log.map((e) => e[2])) - Math.min(...log.map((e) => e[1])), worst };
}

/** A scenario run on its own (`node bench/<scenario>.js --runs 3 …`): its options and paths. */
export function standalone() {
  const root = resolve(import.meta.dirname, '..');
  const argv = process.argv.slice(2);
  const opt = (name, dflt) => (argv.includes(`--${name}`) ? argv[argv.indexOf(`--${name}`) + 1] : dflt);
  const median = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  };
  return { opt, paths: { root, out: join(root, 'bench', '.out'), bin: join(root, 'bin', 'docstokg.js'), median } };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { opt, paths } = standalone();
  for (const protocol of opt('protocols', 'http').split(',')) {
    const md = await manyHostsBenchmark({
      ...paths,
      runs: Number(opt('runs', 3)),
      latencies: opt('latencies', '50,200,1000').split(',').map(Number),
      protocol,
    });
    console.log(md);
  }
}

#!/usr/bin/env node
// The fleet scenario: 1, 2 and 4 docstokg processes (standing in for machines) on one manifest and
// one ledger (SQLite, then PostgreSQL: bench/postgres.js), over many loopback hosts (127.0.1.x),
// each paced at RATE requests per second, each answer starting LATENCY ms after its request
// arrives (many-hosts-origin.js). Reports the network time (first arrival to last answer, by the
// origin's clock) per ledger and process count against the bound
//   max(items × latency / (processes × concurrency), (largest host's items − 1) / rate + latency)
// and the most requests any host received in any one-second window from all processes together.
//   node bench/fleet.js [--runs 3] [--processes 1,2,4] [--latency 200] [--ledgers sqlite,postgres]
//                       [--hosts 200 --items-per-host 5]
import { fork, spawn } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ask, manifestLines, roundStats, standalone } from './many-hosts.js';
import { startPostgres } from './postgres.js';

const PORT = 18_190;
const RATE = 2;
const CONCURRENCY = 16;
const PER_HOST = 4;

export function fleetBound(processes, latencyMs, hosts, perHostItems) {
  const items = hosts * perHostItems;
  return Math.max((items * latencyMs) / (processes * CONCURRENCY), ((perHostItems - 1) / RATE) * 1000 + latencyMs);
}

function run(bin, args) {
  return new Promise((res, rej) => {
    const child = spawn('node', [bin, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => (code === 0 ? res() : rej(new Error(`docstokg failed (${code}): ${err}`))));
  });
}

/** `hosts` × `perHostItems` items: many hosts with few items each, or few with many (the hosts' pace binds sooner). */
export async function fleetBenchmark({ root, out, bin, median, runs = 3, processes = [1, 2, 4], latency = 200, ledgers = ['sqlite', 'postgres'], hosts = 200, perHostItems = 5 }) {
  const dir = join(out, 'fleet');
  mkdirSync(dir, { recursive: true });
  const counts = Array(hosts).fill(perHostItems);
  const items = hosts * perHostItems;
  const manifest = join(dir, 'manifest.txt');
  writeFileSync(manifest, `${manifestLines(counts, PORT).join('\n')}\n`);
  const rl = join(dir, 'ratelimits.yaml');
  writeFileSync(rl, `version: 1\ndefaults:\n  artifact: {rates: ["${RATE}/SECOND"], max_delay_ms: 2000, max_concurrent: ${PER_HOST}}\n`);
  const origin = fork(join(root, 'bench', 'many-hosts-origin.js'), [String(hosts), String(PORT)], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  await new Promise((res) => origin.once('message', res));
  const lines = [
    `\n### fleet: ${items} items over ${hosts} loopback hosts, ${RATE}/s per host, ${latency} ms answers; N processes on one manifest and one ledger, each -c ${CONCURRENCY} --per-host ${PER_HOST} (${runs} runs each)`,
    '',
    '| ledger | processes | bound | network time (median) | range | / bound | items/s | most requests to one host in any 1 s |',
    '|---|---|---|---|---|---|---|---|',
  ];
  const postgres = ledgers.includes('postgres') ? await startPostgres() : null;
  try {
    for (const [ledger, n] of ledgers.flatMap((l) => processes.map((p) => [l, p]))) {
      const nets = [];
      let worst = 0;
      for (let r = 0; r < runs; r += 1) {
        const o = join(dir, 'out');
        rmSync(o, { recursive: true, force: true });
        await ask(origin, { latency }, 'started');
        const db = ledger === 'postgres' ? ['--db', await postgres.fresh('fleet')] : [];
        const args = ['download', manifest, '-o', o, ...db, '-c', String(CONCURRENCY), '--per-host', String(PER_HOST), '--ratelimits', rl, '--no-progress', '-q', '--min-free', '0'];
        await Promise.all(Array.from({ length: n }, () => run(bin, args)));
        const log = await ask(origin, { collect: true }, 'log');
        if (log.length < items) throw new Error(`expected ${items} requests, the origin saw ${log.length}`);
        const round = roundStats(log);
        nets.push(round.net);
        worst = Math.max(worst, round.worst);
      }
      const b = fleetBound(n, latency, hosts, perHostItems);
      const net = median(nets);
      lines.push(
        `| ${ledger === 'postgres' ? 'PostgreSQL' : 'SQLite'} | ${n} | ${(b / 1000).toFixed(2)} s | ${(net / 1000).toFixed(2)} s | ${(Math.min(...nets) / 1000).toFixed(2)}-${(Math.max(...nets) / 1000).toFixed(2)} s | ${(net / b).toFixed(2)}× | ${Math.round(items / (net / 1000))} | ${worst} (limit ${RATE}) |`,
      );
      console.error(lines.at(-1));
    }
  } finally {
    origin.send({ exit: true });
    await postgres?.stop();
  }
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { opt, paths } = standalone();
  const md = await fleetBenchmark({
    ...paths,
    runs: Number(opt('runs', 3)),
    processes: opt('processes', '1,2,4').split(',').map(Number),
    latency: Number(opt('latency', 200)),
    ledgers: opt('ledgers', 'sqlite,postgres').split(','),
    hosts: Number(opt('hosts', 200)),
    perHostItems: Number(opt('items-per-host', 5)),
  });
  console.log(md);
}

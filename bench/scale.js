import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, statSync, writeFileSync, readdirSync, createWriteStream } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { jobKey } from '../dist/manifest/parse.js';
import { openDatabase } from '../dist/ledger/open.js';
import { bytesSent } from './server.js';

const MILLION = 1_000_000;

async function writeManifest(path, base) {
  if (existsSync(path)) return;
  const out = createWriteStream(path);
  for (let i = 0; i < MILLION; i += 1) {
    if (!out.write(`${base}/w/${i}.pdf\n`)) await new Promise((r) => out.once('drain', r));
  }
  await new Promise((r) => out.end(r));
}

/**
 * The ledger a completed run over the manifest leaves: one done job per line, written directly
 * (downloading a million files first would measure the network, not the re-run).
 */
function doneLedger(db, base) {
  if (existsSync(db)) return;
  openDatabase(db).close();
  const d = new Database(db);
  d.pragma('journal_mode = WAL');
  const ins = d.prepare(`INSERT INTO jobs (key, item_id, canonical_url, urls, state, status, sha256, bytes, path, url, final_url, http_status, attempts, created_at, updated_at)
    VALUES (?, ?, ?, ?, 'done', 'downloaded', ?, 65536, ?, ?, ?, 200, 1, 0, 0)`);
  d.transaction(() => {
    for (let i = 0; i < MILLION; i += 1) {
      const url = `${base}/w/${i}.pdf`;
      const sha = jobKey('sha', [url]);
      ins.run(jobKey(url, [url]), url, url, JSON.stringify([url]), sha, `${sha.slice(0, 2)}/${sha}.pdf`, url, url);
    }
  })();
  d.close();
}

/**
 * Bytes the connections of process `pid` to the bench origin had received (headers included), from
 * the kernel's TCP counters; null without `ss`. nginx's access log counts what it handed its own
 * socket, which on loopback includes megabytes that never reached the client.
 */
function bytesReceived(pid, port) {
  const r = spawnSync('ss', ['-tniHp', 'state', 'established', `( dport = :${port} )`], { encoding: 'utf8' });
  if (r.status !== 0) return null;
  let total = 0;
  let mine = false;
  for (const line of r.stdout.split('\n')) {
    if (!line.startsWith('\t') && !line.startsWith(' ')) mine = line.includes(`pid=${pid},`);
    else if (mine) total += Number(/bytes_received:(\d+)/.exec(line)?.[1] ?? 0);
  }
  return total;
}

/** The million-line measures run this many times each: one run of ~10 s moves 10-20% with the hour. */
const SCALE_RUNS = 3;

function repeated(n, run) {
  return Array.from({ length: n }, () => run());
}

/** Median rate with the runs' range, and the highest peak RSS of them (the bound holds for each run). */
function rate(runs, median) {
  const perSecond = runs.map((r) => MILLION / (r.wallMs / 1000));
  const secs = runs.map((r) => r.wallMs / 1000);
  const rss = Math.max(...runs.map((r) => r.rssKiB)) / 1024;
  return `${median(perSecond).toFixed(0)} items/s (${median(secs).toFixed(1)} s; runs ${Math.min(...perSecond).toFixed(0)}-${Math.max(...perSecond).toFixed(0)}), peak RSS ${rss.toFixed(0)} MB`;
}

export async function scaleBenchmarks({ out, bin, server, timed, fresh, median }) {
  const lines = ['\n### Scale, start-up and resume', '', '| measure | result |', '|---|---|'];
  const manifest = join(out, 'million.txt');
  await writeManifest(manifest, server.base);

  // `node -e 0` beside it: Node.js's own start. NODE_EXTRA_CA_CERTS, when the environment sets
  // it, is read and parsed at every start of any Node.js process, before a line of docstokg runs.
  const envs = process.env.NODE_EXTRA_CA_CERTS ? ['', 'env -u NODE_EXTRA_CA_CERTS '] : [''];
  for (const env of envs) {
    const startup = [];
    const bare = [];
    for (let i = 0; i < 10; i += 1) {
      startup.push(timed(`${env}node ${bin} --version`).wallMs);
      bare.push(timed(`${env}node -e 0`).wallMs);
    }
    const how = envs.length === 1 ? '' : env ? '; NODE_EXTRA_CA_CERTS unset' : '; NODE_EXTRA_CA_CERTS as set here';
    lines.push(`| start-up (\`docstokg --version\`, median of 10${how}) | ${median(startup).toFixed(0)} ms (\`node -e 0\`: ${median(bare).toFixed(0)} ms) |`);
  }

  const dryDir = join(out, 'dry');
  const dry = repeated(SCALE_RUNS, () => {
    fresh(dryDir);
    return timed(`node ${bin} download ${manifest} -o ${dryDir} --dry-run --json > /dev/null`);
  });
  lines.push(`| first ingestion of 1,000,000 lines, \`--dry-run --json\` (median of ${SCALE_RUNS}) | ${rate(dry, median)} |`);

  const rerunDir = join(out, 'rerun');
  mkdirSync(rerunDir, { recursive: true });
  const db = join(out, 'million.sqlite');
  doneLedger(db, server.base);
  const rerun = repeated(SCALE_RUNS, () => timed(`node ${bin} download ${manifest} -o ${rerunDir} --db ${db} --json -q > /dev/null`));
  lines.push(`| re-run of 1,000,000 done items (\`--json\`, all \`skipped\`; median of ${SCALE_RUNS}) | ${rate(rerun, median)} |`);

  if (server.accessLog) {
    const dir = join(out, 'resume');
    fresh(dir);
    const m = join(out, 'resume.txt');
    // A query string of its own: the access log is appended to by every benchmark run.
    const needle = `/large/0.pdf?resume-${Date.now()}`;
    writeFileSync(m, `${server.base}${needle}\n`);
    const child = spawn(process.execPath, [bin, 'download', m, '-o', dir, '-q', '--ratelimits', join(out, '..', 'ratelimits.bench.yaml')], { stdio: 'ignore' });
    const closed = new Promise((r) => child.on('close', r));
    let held = 0;
    for (let i = 0; i < 2000 && held < 100 * 2 ** 20; i += 1) {
      await new Promise((r) => setTimeout(r, 5));
      held = partBytes(dir);
    }
    // Stopped first, so the count of bytes that reached it is final when it is read (a stopped
    // process is killed at that instant as far as its own state goes).
    child.kill('SIGSTOP');
    await new Promise((r) => setTimeout(r, 200));
    const reached = bytesReceived(child.pid, new URL(server.base).port);
    child.kill('SIGKILL');
    await closed;
    held = partBytes(dir);
    // nginx logs the request once it sees the connection close.
    for (let i = 0; i < 100 && bytesSent(server.accessLog, needle) === 0; i += 1) await new Promise((r) => setTimeout(r, 20));
    const firstSent = bytesSent(server.accessLog, needle);
    timed(`node ${bin} download ${m} -o ${dir} -q --ratelimits ${join(out, '..', 'ratelimits.bench.yaml')}`);
    const size = 256 * 2 ** 20;
    const sent = bytesSent(server.accessLog, needle);
    const mib = (n) => (n / 2 ** 20).toFixed(2);
    const pct = (n) => ((100 * n) / size).toFixed(2);
    const logged = sent - size;
    if (reached === null) {
      lines.push(`| resume of a 256 MiB file killed (SIGKILL) at ${mib(held)} MiB held | ${mib(logged)} MiB sent twice by nginx's log (${pct(logged)}% of the file; \`ss\` missing, so bytes left in nginx's socket are included) |`);
    } else {
      const again = reached + (sent - firstSent) - size;
      lines.push(`| resume of a 256 MiB file killed (SIGKILL) at ${mib(held)} MiB held | ${mib(again)} MiB fetched twice (${pct(again)}% of the file); by nginx's log ${mib(logged)} MiB (${pct(logged)}%), of which ${mib(firstSent - reached)} MiB never left its socket |`);
    }
  }
  rmSync(join(out, 'dl'), { recursive: true, force: true });
  return lines.join('\n');
}

/** Size of the one part in a store's staging subdirectories (0 while there is none). */
function partBytes(out) {
  const staging = join(out, '.staging');
  try {
    for (const shard of readdirSync(staging, { withFileTypes: true })) {
      if (!shard.isDirectory()) continue;
      const part = readdirSync(join(staging, shard.name)).find((f) => f.endsWith('.part'));
      if (part) return statSync(join(staging, shard.name, part)).size;
    }
  } catch {
    // not there yet, or the part just moved into the store
  }
  return 0;
}

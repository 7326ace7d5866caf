// The store in a bucket beside the store in a directory: the same set, docstokg durable, into a
// directory and into s3rver (an S3-protocol server on loopback that keeps objects as files; on a
// real service the upload's network and the service's latency add to it). Runs alternate.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';

function run(args, env) {
  return new Promise((resolve) => {
    const child = spawn('node', args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (status) => resolve({ status, stderr }));
  });
}

export async function s3Benchmark({ out, bin, set, manifest, median, runs = 3 }) {
  let S3rver;
  try {
    S3rver = (await import('s3rver')).default;
  } catch {
    return '\n(s3 store: s3rver is not installed; skipped)';
  }
  const bucketDir = mkdtempSync(join(tmpdir(), 'docstokg-bench-s3-'));
  const server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: bucketDir, configureBuckets: [{ name: 'bench' }] });
  const { port } = await server.run();
  const env = { ...process.env, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1' };
  const dir = join(out, 's3-dl');
  const common = [bin, 'download', manifest, '-c', '16', '--per-host', '16', '--no-progress', '-q', '--min-free', '0'];
  const targets = {
    directory: () => [...common, '-o', dir],
    's3:// (s3rver)': (r) => [...common, '-o', `s3://bench/r${r}`, '--s3-endpoint', `http://127.0.0.1:${port}`, '--db', join(dir, 'ledger.sqlite'), '--staging', join(dir, 'staging')],
  };
  const walls = Object.fromEntries(Object.keys(targets).map((k) => [k, []]));
  try {
    for (let r = 0; r < runs; r += 1) {
      const order = r % 2 ? Object.keys(targets).reverse() : Object.keys(targets);
      for (const name of order) {
        rmSync(dir, { recursive: true, force: true });
        const t0 = performance.now();
        // Not spawnSync: s3rver answers from this process's event loop.
        const p = await run(targets[name](r), env);
        walls[name].push(performance.now() - t0);
        if (p.status !== 0) throw new Error(`${name} failed (${p.status}): ${p.stderr}`);
      }
    }
  } finally {
    await server.close();
    rmSync(bucketDir, { recursive: true, force: true });
  }
  const lines = [`\n### store: ${set.files.length} × ${set.label} into a directory and into a bucket (${runs} runs each, durable)`, '', '| store | median wall | files/s | MB/s | / directory |', '|---|---|---|---|---|'];
  const base = median(walls.directory);
  for (const [name, ws] of Object.entries(walls)) {
    const m = median(ws);
    lines.push(`| ${name} | ${(m / 1000).toFixed(2)} s | ${(set.files.length / (m / 1000)).toFixed(0)} | ${((set.files.length * set.size) / 1e6 / (m / 1000)).toFixed(0)} | ${(m / base).toFixed(2)}× |`);
  }
  return lines.join('\n');
}

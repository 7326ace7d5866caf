import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BIN, jsonl, originAndWorkspace, runCli } from '../helpers/cli.js';
import { queryLedger, writeLedger } from '../helpers/ledger.js';
import { samplePdf } from '../helpers/origin.js';

/**
 * Runs the binary with its stdout read by a reader that goes away after `keep` bytes, as
 * `| head -c N` does: the process must end by itself, quietly.
 */
function readThenClose(args: string[], keep: number): Promise<{ code: number | null; stderr: string; got: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let got = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      got += d;
      if (got.length >= keep) child.stdout.destroy();
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('close', (code) => resolve({ code, stderr, got }));
  });
}

describe('pipelines that stop reading, and usage errors', () => {
  const env = originAndWorkspace();

  it('download --json | head -c 200: stops, keeps the ledger consistent, exits 141 quietly', { timeout: 60_000 }, async () => {
    const { origin, ws } = env;
    const items = Array.from({ length: 400 }, (_, i) => {
      origin.set(`/pipe/${i}.pdf`, { body: samplePdf(`pipe ${i}`, 4000), trickle: { chunk: 1000, ms: 5 } });
      return { id: `p${i}`, url: origin.url(`/pipe/${i}.pdf`) };
    });
    const manifest = await ws.file('pipe.jsonl', jsonl(items));
    const out = join(ws.dir, 'pipe');
    const res = await readThenClose(['download', manifest, '-o', out, '--json', '--no-progress', '-c', '4'], 200);
    expect(res.code).toBe(141);
    expect(res.stderr).not.toMatch(/EPIPE|internal error|at /);
    expect(queryLedger(out, "SELECT key FROM jobs WHERE state = 'active'")).toEqual([]);
    const rec = await runCli(['reconcile', '-o', out, '--json']);
    expect(JSON.parse(rec.stdout)).toMatchObject({ consistent: true });
    const rest = await runCli(['download', manifest, '-o', out, '--json', '-c', '16']);
    expect(rest.code).toBe(0);
    expect(rest.records).toHaveLength(400);
  });

  it('export | head and download --dry-run | head end quietly', async () => {
    const out = join(env.ws.dir, 'pipe');
    // Far more output than the pipe holds, so the reader is gone while export still writes.
    writeLedger(out, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
      INSERT INTO jobs (key, item_id, urls, state, created_at, updated_at) SELECT 'filler' || i, 'filler' || i, '[]', 'pending', 0, 0 FROM n`);
    writeLedger(out, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
      INSERT INTO attempts (job_key, run_id, url, bytes, elapsed_ms, started_at) SELECT 'filler' || i, 'r', 'http://127.0.0.1:9/x' || i, 0, 0, 0 FROM n`);
    const exp = await readThenClose(['export', '-o', out], 300);
    expect(exp.code).toBe(141);
    expect(exp.stderr).toBe('');
    const att = await readThenClose(['export', '-o', out, '--attempts', '--format', 'csv'], 100);
    expect(att.code).toBe(141);
    expect(att.stderr).toBe('');
    // --dry-run of a long manifest stops planning as soon as its reader is gone.
    const big = await env.ws.file('big.txt', Array.from({ length: 200_000 }, (_, i) => `http://127.0.0.1:9/x${i}`).join('\n'));
    const dry = await readThenClose(['download', big, '-o', join(env.ws.dir, 'dry'), '--dry-run', '--json'], 200);
    expect(dry.code).toBe(141);
    expect(dry.stderr).toBe('');
  });

  it('export --attempts: the same fields in the same order in JSONL and CSV, times in ISO 8601', async () => {
    const out = join(env.ws.dir, 'pipe');
    const lines = (await runCli(['export', '-o', out, '--attempts'])).stdout.trim().split('\n');
    const first = JSON.parse(lines[0]!) as Record<string, unknown>;
    const header = (await runCli(['export', '-o', out, '--attempts', '--format', 'csv'])).stdout.split('\n')[0]!;
    expect(Object.keys(first).join(',')).toBe(header);
    expect(String(first.started_at)).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    const runs = (await runCli(['status', '-o', out, '--runs'])).stdout;
    expect(runs).toMatch(/\d+(\.\d)? (B|KiB|MiB)/);
    expect(runs).not.toMatch(/bytes \d/);
  });

  it('usage errors exit 2 with a short message; --help and --version exit 0', async () => {
    const bare = await runCli([]);
    expect(bare.code).toBe(2);
    expect(bare.stderr).toContain('Usage: docstokg');
    const noManifest = await runCli(['download']);
    expect(noManifest.code).toBe(2);
    expect(noManifest.stderr.trim().split('\n').length).toBeLessThanOrEqual(3);
    expect(noManifest.stderr).toContain("missing required argument 'manifest'");
    expect((await runCli(['--help'])).code).toBe(0);
    expect((await runCli(['download', '--help'])).code).toBe(0);
    expect((await runCli(['--version'])).code).toBe(0);
    const badEnv = await runCli(['download', '-', '--dry-run'], { env: { DOCSTOKG_REVALIDATE: 'maybe' }, stdin: '' });
    expect(badEnv.code).toBe(2);
    expect(badEnv.stderr).toContain('1/0, yes/no, on/off');
    expect((await runCli(['status', '-v'])).code).toBe(2);
  });

  it('status shows pending jobs as pending', async () => {
    const { origin, ws } = env;
    origin.set('/pend/slow.pdf', { body: samplePdf('pend', 4000), stallAfter: { bytes: 100, ms: 60_000 } });
    const manifest = await ws.file('pend.jsonl', jsonl([{ id: 'slow', url: origin.url('/pend/slow.pdf') }]));
    const out = join(ws.dir, 'pend');
    const res = await runCli(['download', manifest, '-o', out, '--no-progress'], { onSpawn: (pid) => setTimeout(() => process.kill(pid, 'SIGINT'), 1500) });
    expect(res.code).toBe(130);
    expect(res.stderr).toMatch(/interrupted by SIGINT: 1 item not finished \(parts are kept\); run the same command again to continue/);
    const status = await runCli(['status', '-o', out]);
    expect(status.stdout).toMatch(/last status: +pending 1/);
  });
});

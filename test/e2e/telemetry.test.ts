import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import parsePrometheus from 'parse-prometheus-text-format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonl, runCli, workspace, type Workspace } from '../helpers/cli.js';
import { samplePdf, startOrigin, type Origin } from '../helpers/origin.js';

describe('telemetry: JSON events, metrics file, run history, per-download metrics', () => {
  let origin: Origin;
  let limited: Origin;
  let ws: Workspace;
  let out: string;
  let manifest: string;
  let first: Awaited<ReturnType<typeof runCli>>;
  const metricsFile = () => join(ws.dir, 'docstokg.prom');

  beforeAll(async () => {
    origin = await startOrigin({
      '/a.pdf': { body: samplePdf('tel a', 5000) },
      '/b.pdf': { body: samplePdf('tel b', 300_000), etag: '"b"', ranges: true },
      '/flaky.pdf': { body: samplePdf('tel flaky', 4000), failFirst: { times: 1, status: 503 } },
      '/gone.pdf': { body: Buffer.alloc(0), status: 404 },
      '/slow.pdf': { body: samplePdf('tel slow', 200_000), trickle: { chunk: 20_000, ms: 60 } },
    });
    origin.set('/b.pdf', (n) => ({ body: samplePdf('tel b', 300_000), etag: '"b"', ranges: true, truncateAfter: n === 1 ? 100_000 : undefined }));
    limited = await startOrigin({}, '127.0.0.2');
    for (let i = 0; i < 3; i += 1) limited.set(`/r/${i}.pdf`, { body: samplePdf(`tel r${i}`, 3000) });
    ws = await workspace();
    out = join(ws.dir, 'out');
    manifest = await ws.file('t.jsonl', jsonl([
      { id: 'a', url: origin.url('/a.pdf') },
      { id: 'b', url: origin.url('/b.pdf') },
      { id: 'flaky', url: origin.url('/flaky.pdf') },
      { id: 'gone', url: origin.url('/gone.pdf') },
      { id: 'slow', url: origin.url('/slow.pdf') },
      ...[0, 1, 2].map((i) => ({ id: `r${i}`, url: limited.url(`/r/${i}.pdf`) })),
    ]));
    const rl = await ws.file('rl.yaml', 'version: 1\ndefaults:\n  artifact: {rates: []}\nhosts:\n  127.0.0.2:\n    artifact: {rates: ["2/SECOND"], max_delay_ms: 5000}\n');
    first = await runCli(['download', manifest, '-o', out, '--log-format', 'json', '--metrics-file', metricsFile(), '--ratelimits', rl, '--retry-delay', '5', '--lease-ttl', '1', '--no-progress']);
  });
  afterAll(async () => {
    await Promise.all([origin.close(), limited.close()]);
    await ws.cleanup();
  });

  const eventsOf = (stderr: string) => stderr.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);

  it('--log-format json: one event per line with run id and ISO time, covering the run', () => {
    expect(first.code).toBe(1);
    const events = eventsOf(first.stderr);
    const runId = events[0]!.run_id;
    for (const e of events) {
      expect(e.run_id).toBe(runId);
      expect(new Date(e.ts as string).toISOString()).toBe(e.ts);
    }
    const names = new Set(events.map((e) => e.event));
    for (const name of ['run_start', 'run_end', 'job_created', 'lease_acquired', 'lease_renewed', 'transition', 'item_done', 'item_failed', 'retry_scheduled', 'resume_decision', 'op', 'request', 'rate_limit_wait']) {
      expect(names, name).toContain(name);
    }
    expect(events[0]!.event).toBe('run_start');
    expect(events.at(-1)).toMatchObject({ event: 'run_end', exit_code: 1 });
    expect(events.find((e) => e.event === 'retry_scheduled' && e.id === 'flaky')).toMatchObject({ id: 'flaky', cause: 'http_503', delay_ms: expect.any(Number) });
    expect(events.find((e) => e.event === 'resume_decision' && e.id === 'b' && e.decision === 'range:etag')).toMatchObject({ resume_from: 100_000 });
    expect(events.find((e) => e.event === 'item_failed')).toMatchObject({ id: 'gone', reason: 'http_404' });
    expect(events.filter((e) => e.event === 'transition' && e.to === 'done').length).toBe(7);
  });

  it('reports job reuse and breaker transitions in later runs, and reconcile steps', async () => {
    const again = await runCli(['download', manifest, '-o', out, '--log-format', 'json', '--no-progress']);
    const events = eventsOf(again.stderr);
    expect(events.filter((e) => e.event === 'job_reused').length).toBe(8);
    const dead = await startOrigin({ '/x.pdf': { body: Buffer.alloc(0), failFirst: { times: 1e9, status: 502 } } }, '127.0.0.3');
    // A slow item elsewhere keeps the run busy past the reset timeout, so the dead host is probed
    // (with no other work left its item would end breaker_open at once).
    origin.set('/long.pdf', { body: samplePdf('tel long', 4000), trickle: { chunk: 400, ms: 100 } });
    const m = await ws.file('dead.jsonl', jsonl([{ id: 'x', url: dead.url('/x.pdf') }, { id: 'long', url: origin.url('/long.pdf') }]));
    const br = await ws.file('br.yaml', 'defaults: {fail_max: 1, reset_timeout_s: 0.2}\n');
    const res = await runCli(['download', m, '-o', out, '--log-format', 'json', '--breakers', br, '--retries', '2', '--retry-delay', '300']);
    const states = eventsOf(res.stderr).filter((e) => e.event === 'breaker').map((e) => e.state);
    expect(states.slice(0, 2)).toEqual(['open', 'half_open']);
    await dead.close();
    const rec = await runCli(['reconcile', '-o', out, '--log-format', 'json']);
    const steps = eventsOf(rec.stderr).filter((e) => e.event === 'reconcile_step').map((e) => e.step);
    expect(steps).toEqual(['expire-leases', 'finish-abandoned-ops', 'adopt-objects', 'verify-objects', 'requeue-missing', 'sweep-parts']);
  });

  it('--metrics-file: Prometheus text that a parser accepts, with the run in it, written atomically', async () => {
    const text = await readFile(metricsFile(), 'utf8');
    const families = new Map(parsePrometheus(text).map((f) => [f.name, f]));
    const sample = (name: string, labels: Record<string, string> = {}) =>
      Number(families.get(name)?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))?.value);
    expect(families.get('docstokg_items_total')?.type).toBe('COUNTER');
    expect(sample('docstokg_items_total', { status: 'downloaded' })).toBe(7);
    expect(sample('docstokg_items_total', { status: 'failed', reason: 'http_404' })).toBe(1);
    expect(sample('docstokg_bytes_total')).toBeGreaterThan(500_000);
    expect(sample('docstokg_requests_total', { host: '127.0.0.1', class: '5xx' })).toBe(1);
    expect(sample('docstokg_requests_total', { host: '127.0.0.1', class: '4xx' })).toBe(1);
    expect(sample('docstokg_requests_total', { host: '127.0.0.2', class: '2xx' })).toBe(3);
    expect(sample('docstokg_retries_total', { cause: 'http_503' })).toBe(1);
    expect(sample('docstokg_resumed_bytes_saved_total')).toBe(100_000);
    expect(sample('docstokg_rate_limit_wait_seconds_total')).toBeGreaterThan(0);
    expect(sample('docstokg_run_duration_seconds')).toBeGreaterThan(0);
    expect(families.get('docstokg_run_duration_seconds')?.type).toBe('GAUGE');
    expect((await readdir(ws.dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    // Every sample line is name{labels} value, and every family has HELP and TYPE first.
    for (const line of text.trim().split('\n')) {
      expect(line).toMatch(/^(# (HELP|TYPE) [a-z_]+ .+|[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? -?[0-9.e+]+)$/);
    }
  });

  it('status --runs lists past runs with counts and exit codes', async () => {
    const res = await runCli(['status', '-o', out, '--runs', '--json']);
    const runs = res.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(runs.length).toBeGreaterThanOrEqual(3);
    expect(runs[0]).toMatchObject({ exit_code: 1, counts: expect.objectContaining({ downloaded: 7, failed: 1 }), argv: expect.arrayContaining(['download']) });
    // The second run's only failure is the first run's, not asked again: exit 0 (SPEC §8).
    expect(runs[1]).toMatchObject({ exit_code: 0, counts: expect.objectContaining({ skipped: 7 }) });
    const human = await runCli(['status', '-o', out, '--runs']);
    expect(human.stdout).toMatch(/exit 1 .*downloaded 7/);
  });

  it('export --attempts gives per-download metrics', async () => {
    const res = await runCli(['export', '-o', out, '--attempts']);
    const b = res.records.filter((r) => r.item_id === 'b');
    expect(b.map((r) => r.resume_decision)).toEqual(['fresh', 'range:etag']);
    expect(b[1]).toMatchObject({ http_status: 206, bytes: 200_000, resume_from: 100_000, dedup: 'stored', path: expect.stringMatching(/^[0-9a-f]{2}\/[0-9a-f]{64}\.pdf$/), sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(b[1]!.fsync_ms).toEqual(expect.any(Number));
    expect(b[1]!.throughput_bps).toBeGreaterThan(0);
    const csv = await runCli(['export', '-o', out, '--attempts', '--format', 'csv']);
    expect(csv.stdout.split('\n')[0]).toContain('resume_decision,fsync_ms,dedup,path,sha256');
  });

  it('the human format stays the default', async () => {
    const res = await runCli(['download', manifest, '-o', out]);
    expect(res.stderr).toMatch(/^docstokg: /m);
    expect(res.stderr).not.toMatch(/^\{/m);
  });
});

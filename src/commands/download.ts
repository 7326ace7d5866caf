import { access, mkdir } from 'node:fs/promises';
import { constants } from 'node:fs';
import type { DownloadOptions } from '../config.js';
import { linkDone } from '../download/ops.js';
import { heartbeat, itemTask, stopLeases, type Run } from '../download/worker.js';
import { FatalError, UsageError } from '../errors.js';
import { HostGate } from '../hosts/gate.js';
import { HostHeaders, loadHostHeaders } from '../hosts/headers.js';
import { UrlPolicy } from '../http/url-policy.js';
import { builtinConfig, loadBreakers, loadRatelimits, type BreakerPolicies, type RatePolicies } from '../hosts/policy.js';
import { HttpClient } from '../http/client.js';
import { dbPath } from '../ledger/locate.js';
import { SqliteLedger } from '../ledger/sqlite.js';
import type { PlanResult } from '../ledger/types.js';
import type { Item } from '../manifest/parse.js';
import { newOwnerId } from '../ledger/owner.js';
import { eachItem, type Visited } from '../manifest/items.js';
import { Pool } from '../pool.js';
import { startTelemetry } from '../telemetry.js';
import { knownFailure, recordFromRow, type DownloadRecord } from '../record.js';
import { EXIT_PIPE, onStdoutClosed } from '../stdout.js';
import { Reporter } from '../report.js';
import { tuneForTransfers } from '../runtime-tuning.js';
import { closeDirHandles } from '../store/fsync.js';
import { prepareStaging } from '../store/staging.js';
import { planDryRun } from './dry-run.js';

async function checkManifests(files: readonly string[]): Promise<void> {
  if (files.length === 0) throw new UsageError('download: at least one manifest (or - for stdin) is required');
  for (const f of files) {
    if (f === '-') continue;
    try {
      await access(f, constants.R_OK);
    } catch {
      throw new UsageError(`manifest ${f} does not exist or is not readable`);
    }
  }
}

async function prepareOut(opts: DownloadOptions): Promise<void> {
  try {
    await prepareStaging(opts.out);
    await access(opts.out, constants.W_OK);
    if (opts.linkDir) await mkdir(opts.linkDir, { recursive: true });
  } catch (err) {
    throw new FatalError(`output directory ${opts.out} is not writable: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

function userAgent(opts: DownloadOptions): string {
  return opts.mailto ? `${opts.userAgent} (mailto:${opts.mailto})` : opts.userAgent;
}

interface Policies {
  rates: RatePolicies;
  breakers: BreakerPolicies;
  urls: UrlPolicy;
  hostHeaders: HostHeaders;
}

/** Policy files and host lists are read and validated before anything starts: a bad one is exit 2. */
function loadPolicies(opts: DownloadOptions): Policies {
  return {
    rates: loadRatelimits(opts.ratelimits ?? builtinConfig('ratelimits.default.yaml')),
    breakers: loadBreakers(opts.breakers ?? builtinConfig('breakers.default.yaml')),
    urls: new UrlPolicy(opts),
    hostHeaders: opts.hostHeaders ? loadHostHeaders(opts.hostHeaders, process.env) : new HostHeaders(),
  };
}

/** Exit codes after a signal: 128 + its number, as shells report a process it ended. */
const SIGNAL_EXIT: Readonly<Record<string, number>> = { SIGINT: 130, SIGTERM: 143, SIGPIPE: EXIT_PIPE };

export async function runDownload(manifests: readonly string[], opts: DownloadOptions, argv: readonly string[]): Promise<number> {
  await checkManifests(manifests);
  const now = (): number => Date.now();
  const policies = loadPolicies(opts);
  if (opts.dryRun) return planDryRun(manifests, opts, dbPath(opts), policies.urls);
  await prepareOut(opts);
  const ledger = new SqliteLedger(dbPath(opts), { lockTimeoutMs: opts.lockTimeout });
  const telemetry = startTelemetry(opts, ledger.runId);
  const events = telemetry.events;
  // With JSON events the stderr stream is for machines: the summary travels in run_end.
  const reporter = new Reporter(opts.logFormat === 'json' ? { ...opts, quiet: true } : opts, now, events);
  const controller = new AbortController();
  // Tuned only once something is fetched: a re-run with nothing to fetch stays as small as it can.
  const http = new HttpClient({ connectTimeout: opts.connectTimeout, stallTimeout: opts.stallTimeout, concurrency: opts.concurrency, blocked: policies.urls.ranges, beforeFirstUse: tuneForTransfers });
  const ctx = {
    opts,
    ledger,
    http,
    owner: newOwnerId(),
    headers: { 'user-agent': userAgent(opts), accept: 'application/pdf,*/*;q=0.8', 'accept-encoding': 'identity' },
    policy: policies.urls,
    hostHeaders: policies.hostHeaders,
    signal: controller.signal,
    now,
    events,
  };
  const hosts = new HostGate(policies.rates, policies.breakers, opts.retryAfterCap, (host) => ledger.host(host), (row) => ledger.saveHost(row, now()), now, events);
  const pool = new Pool(opts.concurrency, opts.perHost, hosts);
  // A fatal error in one item ends the run: the others stop now, keeping their parts.
  pool.onFailure = () => controller.abort();
  let signalled: NodeJS.Signals | null = null;
  /** the manifests are being read; `unread`: a signal stopped the reading before their end */
  let reading = true;
  let unread = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    // A second signal exits at once: the ledger is WAL and parts are kept, so this is still safe.
    if (signalled) process.exit(SIGNAL_EXIT[sig] ?? 143);
    signalled = sig;
    unread = reading;
    pool.stop();
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // The reader of --json records went away (`| head`): wind down as after SIGTERM, quietly.
  const offStdout = onStdoutClosed(() => {
    reporter.closed = true;
    if (!signalled) onSignal('SIGPIPE');
  });
  const run: Run = { ctx, ledger, reporter, hosts, pool, leases: new Map() };
  controller.signal.addEventListener('abort', () => stopLeases(run), { once: true });
  const beat = setInterval(() => heartbeat(run), Math.max(250, opts.leaseTtl / 4));
  const startedAt = now();
  ledger.beginRun(argv, startedAt);
  events.emit('run_start', { argv, manifests, out: opts.out, db: dbPath(opts), pid: process.pid });
  // Done items whose record is all that is wanted are answered by the ledger in one look-up.
  const skippedRecord = !opts.revalidate && !opts.linkDir && !events.active && !opts.verbose;
  try {
    // Only what has to wait returns a promise: a skipped line costs no trip through the event loop.
    /** A plan that needs nothing but a line of output: a done job's record, or a repeated line. */
    const answer = (plan: Extract<PlanResult, { kind: 'skipped' | 'duplicate' }>): Visited => {
      if (plan.kind === 'skipped') reporter.skipped(plan.json);
      else {
        reporter.planned(-1);
        reporter.duplicates += 1;
      }
      return reporter.writable();
    };
    const planItem = async (item: Item, plan: Exclude<PlanResult, { kind: 'skipped' | 'duplicate' }>, at: number): Promise<void> => {
      if (events.active) {
        events.emit(plan.row.created_at === at ? 'job_created' : 'job_reused', { id: item.id, job: item.key, state: plan.row.state, source: item.source });
      }
      if (plan.kind === 'failed') {
        reporter.record(knownFailure(plan.row, item.source));
      } else if (plan.kind === 'done' && opts.revalidate) {
        const row = plan.row;
        await pool.add(itemTask(run, item, row, row));
      } else if (plan.kind === 'done') {
        await linkDone(ctx, plan.row);
        reporter.record(recordFromRow(plan.row, { status: 'skipped', attempts: 0, elapsed_ms: 0, resumed_from: 0, source: item.source }));
      } else if (plan.kind === 'held') {
        reporter.planned(-1);
        reporter.heldElsewhere += 1;
      } else {
        const row = plan.row;
        await pool.add(itemTask(run, item, row, null));
      }
      await reporter.writable();
    };
    const visit = (item: Item): Visited => {
      if (signalled) return false;
      const at = now();
      const plan = ledger.plan(item, at, { skippedRecord, retryFailed: opts.retryFailed });
      return plan.kind === 'skipped' || plan.kind === 'duplicate' ? answer(plan) : planItem(item, plan, at);
    };
    // A line whose key the ledger answers (done, or repeated) needs no parsing on this thread.
    const byKey = (key: string, source: string): Visited | null => {
      if (signalled) return false;
      const plan = ledger.planByKey(key, source);
      return plan && answer(plan);
    };
    // Invalid lines are kept in the ledger; one an earlier run reported already does not make the exit code 1.
    const lines = {
      planned: () => reporter.planned(),
      record: (r: DownloadRecord) => reporter.record(r, r.status === 'invalid' && !ledger.invalidLine(r.source ?? '', r.message ?? '', now())),
    };
    await eachItem(manifests, lines, visit, skippedRecord ? byKey : undefined);
    reading = false;
    await pool.drain();
  } finally {
    // Records of the items finished so far go out even when the run ends on a fatal error.
    reporter.flush();
    clearInterval(beat);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    offStdout();
    await http.close().catch(() => undefined);
  }
  await reporter.finish(signalled && signalled !== 'SIGPIPE' ? { signal: signalled, unread } : null);
  // Every item has settled (the pool drained): no fsync can still be using a kept directory.
  await closeDirHandles();
  const code = signalled ? (SIGNAL_EXIT[signalled] ?? 143) : reporter.exitCode();
  ledger.endRun(reporter.summaryCounts(), code, now());
  ledger.close();
  events.emit('run_end', { exit_code: code, duration_ms: now() - startedAt, counts: reporter.summaryCounts(), signal: signalled });
  await telemetry.close();
  return code;
}

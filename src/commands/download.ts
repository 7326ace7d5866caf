import { access, mkdir } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import { constants, readFileSync } from 'node:fs';
import { userAgent, type DownloadOptions } from '../config.js';
import { linkDone } from '../download/ops.js';
import { heartbeat, itemTask, stopLeases, type Run } from '../download/item-task.js';
import { FatalError, UsageError } from '../errors.js';
import { HostGate, type SharedHosts } from '../hosts/gate.js';
import { HostHeaders, loadHostHeaders } from '../hosts/headers.js';
import { UrlPolicy } from '../http/url-policy.js';
import { builtinConfig, loadBreakers, loadRatelimits, type BreakerPolicies, type RatePolicies } from '../hosts/policy.js';
import { HttpClient } from '../http/client.js';
import { pemCertificates } from '../http/trust.js';
import { dbPath, openLedger } from '../ledger/locate.js';
import { redacted } from '../ledger/postgres/bridge.js';
import type { Ledger, PlanResult } from '../ledger/types.js';
import { metadataHeaders, type ResolveServices } from '../download/targets.js';
import { resolverConfig, type ResolverConfig } from '../resolve/config.js';
import { RobotsRules } from '../resolve/robots.js';
import type { Item } from '../manifest/parse.js';
import { newOwnerId } from '../ledger/owner.js';
import { eachItem, type Visited } from '../manifest/items.js';
import { Pool, type SharedCap } from '../pool.js';
import { startTelemetry, type Telemetry } from '../telemetry.js';
import { knownFailure, recordFromRow, type DownloadRecord } from '../record.js';
import { EXIT_PIPE, onStdoutClosed } from '../stdout.js';
import { Reporter, type Interruption } from '../report.js';
import { tuneForTransfers } from '../runtime-tuning.js';
import { closeDirHandles } from '../store/fsync.js';
import { prepareStaging } from '../store/staging.js';
import type { ObjectStore } from '../store/object-store.js';
import { openStore } from '../store/open-store.js';
import { planDryRun } from '../download/dry-run.js';

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

/** The store and its staging directory, checked writable before anything is fetched. */
async function prepareOut(opts: DownloadOptions): Promise<ObjectStore> {
  const store = await openStore(opts);
  if (opts.linkDir && store.kind !== 'dir') throw new UsageError(`--link-dir needs a local store: objects in ${store.display} have no file to link to`);
  try {
    await prepareStaging(store.local);
    await access(store.local, constants.W_OK);
    if (opts.linkDir) await mkdir(opts.linkDir, { recursive: true });
  } catch (err) {
    throw new FatalError(`${store.kind === 'dir' ? 'output' : 'staging'} directory ${store.local} is not writable: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  await store.preflight();
  return store;
}

interface Policies {
  /** --ca-file's certificates */
  ca: string | null;
  resolvers: ResolverConfig;
  rates: RatePolicies;
  breakers: BreakerPolicies;
  urls: UrlPolicy;
  hostHeaders: HostHeaders;
}

/** A PEM file of certificates; anything else is a usage error before the run starts. */
function readCaFile(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`--ca-file ${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const certs = pemCertificates(text);
  if (certs.length === 0) throw new UsageError(`--ca-file ${file}: no PEM certificate in it (-----BEGIN CERTIFICATE-----)`);
  certs.forEach((pem, i) => {
    try {
      new X509Certificate(pem);
    } catch (err) {
      throw new UsageError(`--ca-file ${file}: certificate ${i + 1} cannot be read: ${(err as Error).message}`);
    }
  });
  return certs.join('\n');
}

/** Policy files and host lists are read and validated before anything starts: a bad one is exit 2. */
function loadPolicies(opts: DownloadOptions): Policies {
  return {
    ca: opts.caFile ? readCaFile(opts.caFile) : null,
    resolvers: resolverConfig(opts.resolvers),
    rates: loadRatelimits(opts.ratelimits ?? builtinConfig('ratelimits.default.yaml')),
    breakers: loadBreakers(opts.breakers ?? builtinConfig('breakers.default.yaml')),
    urls: new UrlPolicy(opts),
    hostHeaders: opts.hostHeaders ? loadHostHeaders(opts.hostHeaders, process.env) : new HostHeaders(),
  };
}

/** The resolvers' configuration, cache (in the ledger) and robots.txt rules for the run. */
function resolveServices(opts: DownloadOptions, config: ResolverConfig, ledger: Ledger): ResolveServices {
  return {
    config,
    mailto: opts.mailto ?? null,
    cache: { store: ledger.httpCache, ttlS: Math.floor(opts.cacheTtl / 1000) },
    robots: new RobotsRules(),
    headers: metadataHeaders(opts),
  };
}

/** Exit codes after a signal: 128 + its number, as shells report a process it ended. */
const SIGNAL_EXIT: Readonly<Record<string, number>> = { SIGINT: 130, SIGTERM: 143, SIGPIPE: EXIT_PIPE };

/**
 * How a run is asked to stop: SIGINT, SIGTERM, or stdout's reader going away (`| head`, handled
 * as SIGTERM, quietly). The first stops claiming and aborts what is in flight; a second signal
 * exits at once (the ledger is WAL and parts are kept, so that is still safe).
 */
class Stopper {
  signal: NodeJS.Signals | null = null;
  /** the manifests are being read; `unread`: a stop came before their end */
  reading = true;
  unread = false;
  private readonly onSignal = (sig: NodeJS.Signals): void => {
    if (this.signal) process.exit(SIGNAL_EXIT[sig] ?? 143);
    this.signal = sig;
    this.unread = this.reading;
    this.stop();
  };
  private readonly offStdout: () => void;

  constructor(private readonly stop: () => void, reporter: Reporter) {
    process.on('SIGINT', this.onSignal);
    process.on('SIGTERM', this.onSignal);
    this.offStdout = onStdoutClosed(() => {
      reporter.closed = true;
      if (!this.signal) this.onSignal('SIGPIPE');
    });
  }

  /** What the summary says about the stop; null for none, or a quiet one. */
  interruption(): Interruption | null {
    return this.signal && this.signal !== 'SIGPIPE' ? { signal: this.signal, unread: this.unread } : null;
  }

  exitCode(reporter: Reporter): number {
    return this.signal ? (SIGNAL_EXIT[this.signal] ?? 143) : reporter.exitCode();
  }

  remove(): void {
    process.off('SIGINT', this.onSignal);
    process.off('SIGTERM', this.onSignal);
    this.offStdout();
  }
}

/**
 * Each host's max_concurrent, kept with every process on the ledger. A process killed while it
 * held permits is found (it ran on this machine) when a host has none left, at most once a second;
 * one on another machine holds them until its leases expire.
 */
function sharedCap(ledger: Ledger, owner: string, ttlMs: number, now: () => number): SharedCap {
  let sweptAt = now();
  ledger.dropDeadPermits();
  return {
    take: (host, cap) => {
      const id = ledger.takeHostPermit(host, owner, cap, now(), ttlMs);
      if (id !== null || now() - sweptAt < 1000) return id;
      sweptAt = now();
      return ledger.dropDeadPermits() > 0 ? ledger.takeHostPermit(host, owner, cap, now(), ttlMs) : null;
    },
    free: (id) => ledger.freeHostPermit(id),
  };
}

/** The pieces of one run, wired together: ledger, telemetry, reporter, HTTP client, hosts, pool. */
function assembleRun(opts: DownloadOptions, policies: Policies, store: ObjectStore, controller: AbortController): Run & { http: HttpClient; telemetry: Telemetry } {
  const now = (): number => Date.now();
  const ledger = openLedger(opts);
  ledger.httpCache.expire(now());
  const telemetry = startTelemetry(opts, ledger.runId);
  const events = telemetry.events;
  // With JSON events the stderr stream is for machines: the summary travels in run_end.
  const reporter = new Reporter(opts.logFormat === 'json' ? { ...opts, quiet: true } : opts, now, events);
  // Tuned only once something is fetched: a re-run with nothing to fetch stays as small as it can.
  const http = new HttpClient({ connectTimeout: opts.connectTimeout, stallTimeout: opts.stallTimeout, concurrency: opts.concurrency, blocked: policies.urls.ranges, ca: policies.ca, http2: opts.http2, beforeFirstUse: tuneForTransfers });
  const ctx = {
    opts,
    ledger,
    store,
    http,
    owner: newOwnerId(),
    headers: { 'user-agent': userAgent(opts), accept: 'application/pdf,*/*;q=0.8', 'accept-encoding': 'identity' },
    policy: policies.urls,
    hostHeaders: policies.hostHeaders,
    signal: controller.signal,
    now,
    events,
    resolve: resolveServices(opts, policies.resolvers, ledger),
  };
  const shared: SharedHosts = {
    take: (host, spacingMs, at) => {
      const next = ledger.takeHostSlot(host, spacingMs, at);
      // Committed at the end of this turn. Until then the take holds the ledger's write lock (on
      // SQLite) and another process's take waits for it; only a process killed in between loses
      // it, and with it at most one turn of the host's pace.
      if (next === null) ledger.committed().catch(() => undefined);
      return next;
    },
    notBefore: (host, at) => {
      ledger.hostNotBefore(host, at);
      ledger.committed().catch(() => undefined);
    },
    countFailure: (host, failed, at) => ledger.countHostFailure(host, failed, at),
  };
  const hosts = new HostGate(policies.rates, policies.breakers, opts.retryAfterCap, (host) => ledger.host(host), (row, at) => ledger.saveHost(row, at), now, events, shared);
  const pool = new Pool(opts.concurrency, opts.perHost, hosts);
  // A fatal error in one item ends the run: the others stop now, keeping their parts.
  pool.onFailure = () => controller.abort();
  pool.warmUp = () => http.dispatcher();
  pool.sharedCap = sharedCap(ledger, ctx.owner, opts.leaseTtl, now);
  return { ctx, ledger, reporter, hosts, pool, leases: new Map(), http, telemetry };
}

/**
 * Reads the manifests and plans every item: a done job's record, a repeated line, a known failure
 * and an invalid line are answered at once; the rest go to the pool. Only what has to wait
 * returns a promise: a skipped line costs no trip through the event loop.
 */
async function planAll(run: Run, manifests: readonly string[], stopper: Stopper): Promise<void> {
  const { ctx, ledger, reporter, pool } = run;
  const { opts, events, now } = ctx;
  // Done items whose record is all that is wanted are answered by the ledger in one look-up.
  const skippedRecord = !opts.revalidate && !opts.linkDir && !events.active && !opts.verbose;
  /** A plan that needs nothing but a line of output: a done job's record, or a repeated line. */
  const answer = (plan: Extract<PlanResult, { kind: 'skipped' | 'duplicate' }>): Visited => {
    if (plan.kind === 'skipped') reporter.skipped(plan.json);
    else {
      reporter.planned(-1);
      reporter.duplicates += 1;
    }
    return reporter.writable();
  };
  const visit = (item: Item): Visited => {
    if (stopper.signal) return false;
    const at = now();
    const plan = ledger.plan(item, at, { skippedRecord, retryFailed: opts.retryFailed });
    return plan.kind === 'skipped' || plan.kind === 'duplicate' ? answer(plan) : planItem(run, item, plan, at);
  };
  // A line whose key the ledger answers (done, or repeated) needs no parsing on this thread.
  const byKey = (key: string, source: string): Visited | null => {
    if (stopper.signal) return false;
    const plan = ledger.planByKey(key, source);
    return plan && answer(plan);
  };
  // Invalid lines are kept in the ledger; one an earlier run reported already does not make the exit code 1.
  const lines = {
    planned: () => reporter.planned(),
    record: (r: DownloadRecord) => reporter.record(r, r.status === 'invalid' && !ledger.invalidLine(r.source ?? '', r.message ?? '', now())),
  };
  await eachItem(manifests, lines, visit, skippedRecord ? byKey : undefined);
  stopper.reading = false;
  await pool.drain();
}

/** One planned item that needs more than a line of output. */
async function planItem(run: Run, item: Item, plan: Exclude<PlanResult, { kind: 'skipped' | 'duplicate' }>, at: number): Promise<void> {
  const { ctx, reporter, pool } = run;
  if (ctx.events.active) {
    ctx.events.emit(plan.row.created_at === at ? 'job_created' : 'job_reused', { id: item.id, job: item.key, state: plan.row.state, source: item.source });
  }
  if (plan.kind === 'failed') {
    reporter.record(knownFailure(plan.row, item.source));
  } else if (plan.kind === 'done' && ctx.opts.revalidate) {
    await pool.add(itemTask(run, item, plan.row, plan.row));
  } else if (plan.kind === 'done') {
    await linkDone(ctx, plan.row);
    reporter.record(recordFromRow(plan.row, { status: 'skipped', attempts: 0, elapsed_ms: 0, resumed_from: 0, source: item.source }));
  } else if (plan.kind === 'held') {
    reporter.planned(-1);
    reporter.heldElsewhere += 1;
  } else {
    await pool.add(itemTask(run, item, plan.row, null));
  }
  await reporter.writable();
}

export async function runDownload(manifests: readonly string[], opts: DownloadOptions, argv: readonly string[]): Promise<number> {
  await checkManifests(manifests);
  const policies = loadPolicies(opts);
  if (opts.dryRun) return planDryRun(manifests, opts, dbPath(opts), policies.urls, policies.resolvers);
  const store = await prepareOut(opts);
  const controller = new AbortController();
  const run = assembleRun(opts, policies, store, controller);
  const { ledger, reporter, pool, http, telemetry } = run;
  const { events, now } = run.ctx;
  const stopper = new Stopper(() => {
    pool.stop();
    controller.abort();
  }, reporter);
  controller.signal.addEventListener('abort', () => stopLeases(run), { once: true });
  const beat = setInterval(() => heartbeat(run), Math.max(250, opts.leaseTtl / 4));
  const startedAt = now();
  ledger.beginRun(argv, startedAt);
  events.emit('run_start', { argv, manifests, out: opts.out, db: redacted(dbPath(opts)), pid: process.pid });
  try {
    await planAll(run, manifests, stopper);
  } finally {
    // Records of the items finished so far go out even when the run ends on a fatal error.
    reporter.flush();
    clearInterval(beat);
    stopper.remove();
    await http.close().catch(() => undefined);
    store.close();
  }
  await reporter.finish(stopper.interruption());
  // Every item has settled (the pool drained): no fsync can still be using a kept directory.
  await closeDirHandles();
  const code = stopper.exitCode(reporter);
  ledger.endRun(reporter.summaryCounts(), code, now());
  ledger.close();
  events.emit('run_end', { exit_code: code, duration_ms: now() - startedAt, counts: reporter.summaryCounts(), signal: stopper.signal });
  await telemetry.close();
  return code;
}

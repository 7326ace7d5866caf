import { access, mkdir, unlink } from 'node:fs/promises';
import { constants } from 'node:fs';
import { join } from 'node:path';
import type { DownloadOptions } from '../config.js';
import { downloadItem, type ItemContext } from '../download/item.js';
import { FatalError, UsageError } from '../errors.js';
import { createAgent } from '../http/client.js';
import { SqliteLedger } from '../ledger/sqlite.js';
import { isDeadLocalOwner, newOwnerId } from '../ledger/owner.js';
import type { JobRow, Ledger, Outcome } from '../ledger/types.js';
import { parseLine, type Item } from '../manifest/parse.js';
import { readManifests } from '../manifest/read.js';
import { HostPool } from '../pool.js';
import { invalidRecord, recordFromRow } from '../record.js';
import { Reporter } from '../report.js';
import { DEFAULT_DB_NAME, STAGING_DIR, partPath } from '../store/paths.js';
import { planDryRun } from './dry-run.js';

export function dbPath(opts: { out: string; db: string | undefined }): string {
  return opts.db ?? join(opts.out, DEFAULT_DB_NAME);
}

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
    await mkdir(join(opts.out, STAGING_DIR), { recursive: true });
    await access(opts.out, constants.W_OK);
    if (opts.linkDir) await mkdir(opts.linkDir, { recursive: true });
  } catch (err) {
    throw new FatalError(`output directory ${opts.out} is not writable: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

function userAgent(opts: DownloadOptions): string {
  return opts.mailto ? `${opts.userAgent} (mailto:${opts.mailto})` : opts.userAgent;
}

/** The stored result of a done job, to put back when its revalidation fails. */
function storedOutcome(row: JobRow): Outcome {
  return {
    state: 'done', status: row.status ?? 'downloaded', reason: null, http_status: row.http_status, url: row.url, final_url: row.final_url,
    sha256: row.sha256, bytes: row.bytes, path: row.path, content_type: row.content_type, etag: row.etag, last_modified: row.last_modified,
    resumed_from: row.resumed_from ?? 0, attempts: row.attempts, elapsed_ms: row.elapsed_ms ?? 0,
  };
}

interface Run {
  ctx: ItemContext;
  ledger: Ledger;
  reporter: Reporter;
  /** per-item aborts, fired when the heartbeat finds a lease lost */
  leases: Map<string, AbortController>;
}

/**
 * Runs a claimed item and records it. A holder that loses its lease stops the item and writes
 * nothing more. A done job being revalidated stays done with its stored object whatever the
 * revalidation met.
 */
async function work(run: Run, item: Item, row: JobRow, previous: JobRow | null): Promise<void> {
  const { ctx, ledger, reporter } = run;
  // A lease whose holder died on this host (kill -9) is taken over now, not after its TTL.
  const steal = row.state === 'active' && isDeadLocalOwner(row.lease_owner) ? row.lease_owner : null;
  if (!ledger.claim(item.key, ctx.owner, ctx.now(), ctx.opts.leaseTtl, { reopen: previous !== null, steal })) {
    reporter.heldElsewhere += 1;
    return;
  }
  if (row.state === 'active' && !steal) {
    // Taken over after expiry from a holder that may still be alive and writing: its part cannot
    // be trusted, and unlinking it sends any late writes of the old holder to a dead inode.
    await unlink(partPath(ctx.opts.out, item.key)).catch(() => undefined);
    ledger.dropPart(item.key);
  }
  const lease = new AbortController();
  run.leases.set(item.key, lease);
  let result;
  try {
    result = await downloadItem({ ...ctx, signal: AbortSignal.any([ctx.signal, lease.signal]) }, item, row, previous);
  } finally {
    run.leases.delete(item.key);
  }
  if (lease.signal.aborted) {
    reporter.heldElsewhere += 1;
    return;
  }
  const { outcome, canonicalUrl } = result;
  const record = recordFromRow(row, { ...outcome, canonical_url: canonicalUrl, source: item.source });
  const keep = previous && outcome.state === 'failed' ? storedOutcome(previous) : outcome;
  if (!previous && outcome.reason === 'interrupted') ledger.release(item.key, ctx.owner, ctx.now());
  else if (!ledger.finish(item.key, ctx.owner, keep, ctx.now())) {
    reporter.heldElsewhere += 1;
    return;
  }
  reporter.record(record);
}

/** Renews every lease of this process and aborts the items whose lease was lost meanwhile. */
function heartbeat(run: Run): void {
  run.ledger.renew(run.ctx.owner, run.ctx.now(), run.ctx.opts.leaseTtl);
  if (run.leases.size === 0) return;
  const held = run.ledger.heldKeys(run.ctx.owner);
  for (const [key, lease] of run.leases) if (!held.has(key)) lease.abort();
}

export async function runDownload(manifests: readonly string[], opts: DownloadOptions, argv: readonly string[]): Promise<number> {
  await checkManifests(manifests);
  const now = (): number => Date.now();
  if (opts.dryRun) return planDryRun(manifests, opts, dbPath(opts));
  await prepareOut(opts);
  const ledger = new SqliteLedger(dbPath(opts));
  const reporter = new Reporter(opts, now);
  const controller = new AbortController();
  const dispatcher = createAgent({ connectTimeout: opts.connectTimeout, stallTimeout: opts.stallTimeout, concurrency: opts.concurrency });
  const ctx: ItemContext = {
    opts,
    ledger,
    dispatcher,
    owner: newOwnerId(),
    headers: { 'user-agent': userAgent(opts), accept: 'application/pdf,*/*;q=0.8', 'accept-encoding': 'identity' },
    signal: controller.signal,
    now,
  };
  const pool = new HostPool(opts.concurrency, opts.perHost);
  let signalled: NodeJS.Signals | null = null;
  const onSignal = (sig: NodeJS.Signals): void => {
    // A second signal exits at once: the ledger is WAL and parts are kept, so this is still safe.
    if (signalled) process.exit(sig === 'SIGINT' ? 130 : 143);
    signalled = sig;
    pool.stop();
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const run: Run = { ctx, ledger, reporter, leases: new Map() };
  const beat = setInterval(() => heartbeat(run), Math.max(250, opts.leaseTtl / 4));
  ledger.beginRun(argv, now());
  try {
    for await (const line of readManifests(manifests)) {
      if (signalled) break;
      const parsed = parseLine(line);
      if (parsed.kind === 'empty') continue;
      reporter.planned();
      if (parsed.kind === 'invalid') {
        reporter.record(invalidRecord(parsed.source, 'invalid_line', parsed.message));
        continue;
      }
      const item = parsed.item;
      const plan = ledger.plan(item, now());
      if (plan.kind === 'duplicate') {
        reporter.planned(-1);
        reporter.duplicates += 1;
      } else if (plan.kind === 'done' && opts.revalidate) {
        const row = plan.row;
        await pool.add({ host: item.candidates[0]?.host ?? '', run: () => work(run, item, row, row) });
      } else if (plan.kind === 'done') {
        reporter.record(recordFromRow(plan.row, { status: 'skipped', attempts: 0, elapsed_ms: 0, resumed_from: 0, source: item.source }));
      } else if (plan.kind === 'held') {
        reporter.planned(-1);
        reporter.heldElsewhere += 1;
      } else {
        const row = plan.row;
        await pool.add({ host: item.candidates[0]?.host ?? '', run: () => work(run, item, row, null) });
      }
      await reporter.writable();
    }
    await pool.drain();
  } finally {
    clearInterval(beat);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await dispatcher.close().catch(() => undefined);
  }
  await reporter.finish();
  const code = signalled ? (signalled === 'SIGINT' ? 130 : 143) : reporter.exitCode();
  ledger.endRun(reporter.summaryCounts(), code, now());
  ledger.close();
  return code;
}

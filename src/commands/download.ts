import { access, mkdir } from 'node:fs/promises';
import { constants } from 'node:fs';
import { join } from 'node:path';
import { HEARTBEAT_MS, LEASE_TTL_MS, type DownloadOptions } from '../config.js';
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
import { DEFAULT_DB_NAME, STAGING_DIR } from '../store/paths.js';
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

/**
 * Runs a claimed item and records it; a lost lease means another holder owns the result. A done
 * job being revalidated stays done with its stored object whatever the revalidation met.
 */
async function work(ctx: ItemContext, ledger: Ledger, reporter: Reporter, item: Item, row: JobRow, previous: JobRow | null): Promise<void> {
  // A lease whose holder died on this host (kill -9) is taken over now, not after its TTL.
  const steal = row.state === 'active' && isDeadLocalOwner(row.lease_owner) ? row.lease_owner : null;
  if (!ledger.claim(item.key, ctx.owner, ctx.now(), LEASE_TTL_MS, { reopen: previous !== null, steal })) {
    reporter.heldElsewhere += 1;
    return;
  }
  const { outcome, canonicalUrl } = await downloadItem(ctx, item, row, previous);
  const record = recordFromRow(row, { ...outcome, canonical_url: canonicalUrl, source: item.source });
  const keep = previous && outcome.state === 'failed' ? storedOutcome(previous) : outcome;
  if (!previous && outcome.reason === 'interrupted') ledger.release(item.key, ctx.owner, ctx.now());
  else if (!ledger.finish(item.key, ctx.owner, keep, ctx.now())) {
    reporter.heldElsewhere += 1;
    return;
  }
  reporter.record(record);
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
  const heartbeat = setInterval(() => ledger.renew(ctx.owner, now(), LEASE_TTL_MS), HEARTBEAT_MS);
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
        await pool.add({ host: item.candidates[0]?.host ?? '', run: () => work(ctx, ledger, reporter, item, row, row) });
      } else if (plan.kind === 'done') {
        reporter.record(recordFromRow(plan.row, { status: 'skipped', attempts: 0, elapsed_ms: 0, resumed_from: 0, source: item.source }));
      } else if (plan.kind === 'held') {
        reporter.planned(-1);
        reporter.heldElsewhere += 1;
      } else {
        const row = plan.row;
        await pool.add({ host: item.candidates[0]?.host ?? '', run: () => work(ctx, ledger, reporter, item, row, null) });
      }
      await reporter.writable();
    }
    await pool.drain();
  } finally {
    clearInterval(heartbeat);
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

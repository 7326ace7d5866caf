import { existsSync } from 'node:fs';
import type { DownloadOptions } from '../config.js';
import type { UrlPolicy } from '../http/url-policy.js';
import { openDatabase } from '../ledger/open.js';
import { SeenKeys } from '../ledger/seen.js';
import { LedgerQueries } from '../ledger/sqlite/queries.js';
import { pendingJob, type JobRow } from '../ledger/types.js';
import { eachItem, type Visited } from '../manifest/items.js';
import type { Item } from '../manifest/parse.js';
import { knownFailure, recordFromRow } from '../record.js';
import { Reporter } from '../report.js';
import { EXIT_PIPE, onStdoutClosed } from '../stdout.js';

/**
 * --dry-run: the same planning as a real run, reported as records, with no network and no write to
 * --out or the ledger. The ledger, if present, is opened read-only to tell done items apart;
 * repeated items are recognised the same way as in a real run (SeenKeys). The URL policy is applied
 * to each first URL as written (no DNS): a URL it refuses is not planned.
 */
export async function planDryRun(manifests: readonly string[], opts: DownloadOptions, db: string, policy: UrlPolicy): Promise<number> {
  const ledger = existsSync(db) ? openDatabase(db, { readonly: true, lockTimeoutMs: opts.lockTimeout }) : null;
  const queries = ledger ? new LedgerQueries(ledger) : null;
  const seen = new SeenKeys();
  const reporter = new Reporter({ ...opts, progress: false }, Date.now);
  // A reader that went away (`| head`) ends the planning: nothing else is for anyone.
  const offStdout = onStdoutClosed(() => (reporter.closed = true));
  const visit = (item: Item): Visited => {
    if (reporter.closed) return false;
    if (!seen.add(item.key)) {
      reporter.duplicates += 1;
      return;
    }
    const row = queries?.job(item.key);
    const base: JobRow = row ?? { ...pendingJob(item, 0), resumed_from: 0, elapsed_ms: 0 };
    const allowed = item.candidates.filter((c) => allows(policy, c.href));
    if (row?.state === 'done') {
      reporter.record(recordFromRow(base, { status: 'skipped', attempts: 0, elapsed_ms: 0, source: item.source }));
    } else if (row?.state === 'failed' && !opts.retryFailed && (row.next_attempt_at === null || row.next_attempt_at > Date.now())) {
      reporter.record(knownFailure(row, item.source));
    } else if (item.candidates.length > 0 && allowed.length === 0) {
      reporter.record(recordFromRow(base, { status: 'failed', reason: 'blocked', url: item.candidates[0]!.href, source: item.source }));
    } else if (item.candidates.length === 0) {
      reporter.record(recordFromRow(base, { status: 'failed', reason: item.blocked.length ? 'blocked' : 'no_url', source: item.source }));
    } else {
      reporter.record(recordFromRow(base, { status: 'planned', reason: null, url: allowed[0]!.href, source: item.source, attempts: 0 }));
    }
    return reporter.writable();
  };
  try {
    await eachItem(manifests, reporter, visit);
  } finally {
    reporter.flush();
    offStdout();
  }
  seen.close();
  ledger?.close();
  if (reporter.closed) return EXIT_PIPE;
  await reporter.finish();
  return reporter.exitCode();
}

function allows(policy: UrlPolicy, href: string): boolean {
  try {
    policy.check(new URL(href));
    return true;
  } catch {
    return false;
  }
}

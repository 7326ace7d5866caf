import { existsSync } from 'node:fs';
import type { DownloadOptions } from '../config.js';
import { LookupError } from '../errors.js';
import { Events } from '../events.js';
import { cachedGet } from '../http/cached-get.js';
import { HttpClient } from '../http/client.js';
import type { RequestGate } from '../http/request-gate.js';
import { GroupCommit } from '../ledger/sqlite/group-commit.js';
import type { LedgerHttpCache } from '../ledger/http-cache.js';
import { sqliteHttpCache } from '../ledger/sqlite/http-cache.js';
import { askNext, METADATA_MAX_BYTES } from '../resolve/chain.js';
import type { ResolverConfig, ResolverName } from '../resolve/config.js';
import { metadataHeaders } from './targets.js';
import type { UrlPolicy } from '../http/url-policy.js';
import { openDatabase } from '../ledger/open.js';
import { SeenKeys } from '../ledger/seen.js';
import { LedgerQueries } from '../ledger/sqlite/queries.js';
import { pendingJob, type JobRow, type LedgerReads } from '../ledger/types.js';
import { isPostgres, PgLedger } from '../ledger/postgres.js';
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
export async function planDryRun(manifests: readonly string[], opts: DownloadOptions, db: string, policy: UrlPolicy, resolvers: ResolverConfig): Promise<number> {
  const ledger = openReads(db, opts.lockTimeout);
  const queries = ledger?.queries ?? null;
  const cached = ledger ? new CachedPlacement(ledger.cache, opts, policy, resolvers) : null;
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
    } else if (item.candidates.length === 0 && item.ids) {
      return (cached?.lead(item) ?? Promise.resolve(null)).then((lead) => {
        reporter.record(recordFromRow(base, { status: 'planned', reason: null, url: lead?.url ?? null, resolver: lead?.resolver ?? null, source: item.source, attempts: 0 }));
        return reporter.writable();
      });
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
  await cached?.close();
  ledger?.close();
  if (reporter.closed) return EXIT_PIPE;
  await reporter.finish();
  return reporter.exitCode();
}

/** The ledger's reads and cache, if there is a ledger: a SQLite file is opened read-only. */
function openReads(db: string, lockTimeoutMs: number): { queries: LedgerReads; cache: LedgerHttpCache; close(): void } | null {
  if (isPostgres(db)) {
    const pg = new PgLedger(db, { lockTimeoutMs });
    return { queries: pg.queries, cache: pg.httpCache, close: () => pg.close() };
  }
  if (!existsSync(db)) return null;
  const file = openDatabase(db, { readonly: true, lockTimeoutMs });
  return { queries: new LedgerQueries(file), cache: sqliteHttpCache(file, new GroupCommit(file, lockTimeoutMs)), close: () => file.close() };
}

function allows(policy: UrlPolicy, href: string): boolean {
  try {
    policy.check(new URL(href));
    return true;
  } catch {
    return false;
  }
}

/**
 * Where the HTTP cache already places a work known only by identifiers: the resolvers asked in
 * order through the cache, behind a gate that lets nothing through, so a fresh cached answer is
 * read and nothing leaves the machine. (`Cache-Control: only-if-cached` would say the same, but
 * undici 7's cache interceptor never answers it when a redirect handler sits above it.) The first
 * lead of the first resolver whose answer is cached, or null.
 */
class CachedPlacement {
  private readonly http: HttpClient;
  private readonly signal = new AbortController().signal;

  constructor(private readonly store: LedgerHttpCache, private readonly opts: DownloadOptions, private readonly policy: UrlPolicy, private readonly config: ResolverConfig) {
    this.http = new HttpClient({ connectTimeout: opts.connectTimeout, stallTimeout: opts.stallTimeout, concurrency: 1, blocked: null });
  }

  async lead(item: Item): Promise<{ url: string; resolver: ResolverName } | null> {
    const get = async (url: string) => {
      const ctx = { dispatcher: await this.http.dispatcher(), cache: { store: this.store, ttlS: Math.floor(this.opts.cacheTtl / 1000) }, headers: metadataHeaders(this.opts), policy: this.policy, gate: NO_NETWORK, signal: this.signal };
      return cachedGet(ctx, url, 'metadata', METADATA_MAX_BYTES);
    };
    for (let from = 0; ; ) {
      const got = await askNext({ config: this.config, mailto: this.opts.mailto ?? null, get, events: new Events(), itemId: item.id }, item.ids!, from);
      if (!got) return null;
      if ('leads' in got.asked && got.asked.leads[0]) return { url: got.asked.leads[0].url, resolver: got.asked.resolver };
      from = got.next;
    }
  }

  close(): Promise<void> {
    return this.http.close();
  }
}

const NO_NETWORK: RequestGate = {
  enter: () => Promise.reject(new LookupError('connect_error', '--dry-run sends no request')),
};

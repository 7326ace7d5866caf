import type { interceptors } from 'undici';
import type { Item } from '../manifest/parse.js';
import { isDeadLocalOwner } from './owner.js';

/** undici's cache storage interface (its cache interceptor applies RFC 9111 on top of it). */
export type CacheStore = NonNullable<NonNullable<Parameters<typeof interceptors.cache>[0]>['store']>;

/** The ledger's HTTP cache for metadata answers (SPEC §9). */
export interface HttpCache extends CacheStore {
  /** drops entries past their deletion time */
  expire(now: number): void;
}

export type JobState = 'pending' | 'active' | 'done' | 'failed';
export type RecordStatus = 'downloaded' | 'deduped' | 'unchanged' | 'skipped' | 'failed' | 'invalid' | 'planned';

/**
 * The only allowed moves of a job. `failed -> active` is a later run trying again; `active ->
 * pending` is a holder giving its lease back (interrupted); `done -> active` happens only for
 * --revalidate, which finishes the job as done again.
 */
export const TRANSITIONS: Readonly<Record<JobState, readonly JobState[]>> = {
  pending: ['active'],
  active: ['done', 'failed', 'pending'],
  failed: ['active'],
  done: ['active'],
};

/**
 * Moves only `reconcile` may make, to bring the ledger back in line with the store: a stale lease
 * expires (active -> pending), a stored object whose finish was never recorded is adopted
 * (pending/failed -> done), a done job whose object is missing or corrupt is re-queued
 * (done -> pending).
 */
export const REPAIRS: Readonly<Record<JobState, readonly JobState[]>> = {
  pending: ['done'],
  active: ['pending'],
  failed: ['done'],
  done: ['pending'],
};

export function sourcesOf(to: JobState, table: Readonly<Record<JobState, readonly JobState[]>> = TRANSITIONS): JobState[] {
  return (Object.keys(table) as JobState[]).filter((from) => table[from].includes(to));
}

export interface JobRow {
  key: string;
  item_id: string;
  doi: string | null;
  canonical_url: string | null;
  urls: string;
  expected_sha256: string | null;
  source: string | null;
  state: JobState;
  status: RecordStatus | null;
  reason: string | null;
  http_status: number | null;
  url: string | null;
  final_url: string | null;
  sha256: string | null;
  bytes: number | null;
  path: string | null;
  content_type: string | null;
  etag: string | null;
  last_modified: string | null;
  resumed_from: number | null;
  attempts: number;
  elapsed_ms: number | null;
  lease_owner: string | null;
  lease_expires_at: number | null;
  /** why the job failed, in words */
  message: string | null;
  /** a failed job: when a later run may ask again; null = only with --retry-failed (§8) */
  next_attempt_at: number | null;
  /** runs in a row that ended the job failed */
  failed_runs: number;
  resolver: string | null;
  landing_url: string | null;
  created_at: number;
  updated_at: number;
}

/** The row a job planned for `item` has before its first run. */
export function pendingJob(item: Item, now: number): JobRow {
  const canonical = item.candidates[0]?.canonical ?? item.blocked[0] ?? null;
  const urls = JSON.stringify([...item.candidates.map((c) => c.canonical), ...item.blocked]);
  return {
    key: item.key, item_id: item.id, doi: item.doi, canonical_url: canonical, urls, expected_sha256: item.expectedSha256, source: item.source,
    state: 'pending', status: null, reason: null, http_status: null, url: null, final_url: null, sha256: null, bytes: null, path: null,
    content_type: null, etag: null, last_modified: null, resumed_from: null, attempts: 0, elapsed_ms: null, lease_owner: null,
    lease_expires_at: null, message: null, next_attempt_at: null, failed_runs: 0, resolver: null, landing_url: null, created_at: now, updated_at: now,
  };
}

/** The columns of a job's result, written by finish and by reconcile's repairs: the one list of them. */
export const OUTCOME_FIELDS = [
  'status', 'reason', 'http_status', 'url', 'final_url', 'sha256', 'bytes', 'path', 'content_type', 'etag', 'last_modified',
  'resumed_from', 'attempts', 'elapsed_ms', 'resolver', 'landing_url',
] as const satisfies readonly (keyof Outcome)[];

/** What a finished job stores: the record's fields minus those the plan already holds. */
export interface Outcome {
  state: 'done' | 'failed';
  status: RecordStatus;
  reason: string | null;
  http_status: number | null;
  url: string | null;
  final_url: string | null;
  sha256: string | null;
  bytes: number | null;
  path: string | null;
  content_type: string | null;
  etag: string | null;
  last_modified: string | null;
  resumed_from: number;
  attempts: number;
  elapsed_ms: number;
  /** the resolver that supplied `url` (null: the manifest did), and the landing page that named it */
  resolver?: string | null;
  landing_url?: string | null;
  /** a failed job's message, and when a later run may ask again (null: never on its own) */
  message?: string | null;
  next_attempt_at?: number | null;
}

export type RepairPatch = Partial<{ [K in keyof Outcome]: Outcome[K] | null }>;

export interface AttemptRow {
  job_key: string;
  url: string;
  final_url: string | null;
  http_status: number | null;
  bytes: number;
  elapsed_ms: number;
  error: string | null;
  resume_from: number | null;
  resume_decision: string | null;
  started_at: number;
  /** for the attempt that produced the stored file */
  sha256?: string | null;
  path?: string | null;
  fsync_ms?: number | null;
  /** stored | deduped | unchanged | replayed */
  dedup?: string | null;
}

export interface RunRow {
  id: string;
  started_at: number;
  ended_at: number | null;
  argv: string;
  counts: string | null;
  exit_code: number | null;
}

export type PlanResult =
  | { kind: 'work'; row: JobRow }
  /** done, asked with `skippedRecord`: its `skipped` record as JSON text, built by the ledger */
  | { kind: 'skipped'; json: string }
  | { kind: 'done'; row: JobRow }
  /** leased by a live holder (another process): that holder reports it */
  | { kind: 'held'; row: JobRow }
  /** same job already seen earlier in this run */
  | { kind: 'duplicate' }
  /** failed in an earlier run, not to be asked again yet (or, permanent, without --retry-failed) */
  | { kind: 'failed'; row: JobRow };

/** What a planned job's row asks for: done, a known failure, held by a live holder, or work. */
export function planOf(row: JobRow, now: number, opts: PlanOptions): Exclude<PlanResult, { kind: 'skipped' | 'duplicate' }> {
  if (row.state === 'done') return { kind: 'done', row };
  if (row.state === 'failed' && !opts.retryFailed && (row.next_attempt_at === null || row.next_attempt_at > now)) return { kind: 'failed', row };
  if (row.state === 'active' && (row.lease_expires_at ?? 0) >= now && !isDeadLocalOwner(row.lease_owner)) return { kind: 'held', row };
  return { kind: 'work', row };
}

export interface PlanOptions {
  /** a done job is answered with its `skipped` record's JSON (no row) */
  skippedRecord?: boolean;
  /** --retry-failed: failed jobs are worked again whatever their next attempt time */
  retryFailed?: boolean;
}

/** An invalid manifest line, kept so that `status` and `export` show it after the run. */
export interface InvalidLineRow {
  source: string;
  message: string;
  run_id: string;
  seen_at: number;
}

/** Validators a part was started with (RFC 7232); a resume must match them. */
export interface PartRow {
  url: string;
  etag: string | null;
  last_modified: string | null;
  total: number | null;
}

export interface ClaimOptions {
  /** also claim a done job (revalidation); its stored result stays until finish */
  reopen?: boolean;
  /** take over a live-looking lease whose owner is known to be dead */
  steal?: string | null;
}

export interface OpRow {
  key: string;
  job_key: string;
  kind: 'stream' | 'finalize' | 'link';
  state: 'started' | 'done';
  detail: string | null;
  result: string | null;
  owner: string | null;
}

/** Per-host state that outlives a run: open breakers and Retry-After cool-downs. */
export interface HostRow {
  host: string;
  breaker_state: 'closed' | 'open' | 'half_open';
  open_until: number;
  cooldown_until: number;
  failures: number;
  last_error: string | null;
}

export interface OpResult {
  state: 'new' | 'done' | 'started';
  result: unknown;
}

export interface StatusCounts {
  byState: Record<string, number>;
  byStatus: Record<string, number>;
  byReason: Record<string, number>;
  /** done jobs by the step that supplied their URL (`manifest`, or a resolver's name) */
  byResolver: Record<string, number>;
  objects: number;
  bytesStored: number;
  /** failed jobs no later run asks again without --retry-failed */
  failedPermanently: number;
  invalidLines: number;
}

/** Failed attempts' URLs counted by host (an unparsable URL counts for none). */
export function countByHost(urls: Iterable<string>): Map<string, number> {
  const out = new Map<string, number>();
  for (const url of urls) {
    let host: string;
    try {
      host = new URL(url).hostname;
    } catch {
      continue;
    }
    out.set(host, (out.get(host) ?? 0) + 1);
  }
  return out;
}

/**
 * What `status`, `export` and `--dry-run` read: no writes. The backend's open group of writes, if
 * any, is committed first.
 */
export interface LedgerReads {
  counts(): StatusCounts;
  /** a job by key (dry-run's look-up) */
  job(key: string): JobRow | undefined;
  jobs(): IterableIterator<JobRow>;
  runs(): RunRow[];
  attempts(): IterableIterator<Record<string, unknown>>;
  invalidLines(): InvalidLineRow[];
  hosts(): Map<string, HostRow>;
  /** failed attempts per host since `since` */
  recentFailures(since: number): Map<string, number>;
}

/**
 * The narrow interface the pipeline and `reconcile` talk to (reads for reports are in the
 * backend's read-only queries: sqlite/queries.ts). Every write after a claim names the lease owner and
 * is refused (returns false) when the lease is no longer held, so a server-backed ledger only has
 * to implement these calls.
 */
export interface Ledger {
  readonly runId: string;
  /** what reports read */
  readonly queries: LedgerReads;
  /** where metadata answers are cached across runs */
  readonly httpCache: HttpCache;
  beginRun(argv: readonly string[], now: number): void;
  endRun(counts: Record<string, number>, exitCode: number, now: number): void;
  plan(item: Item, now: number, opts?: PlanOptions): PlanResult;
  /**
   * The plan of an item known only by its job key, when that is all it takes (a repeated key, or
   * a done job's `skipped` record); null: the line must be parsed and planned.
   */
  planByKey(key: string, source: string): Extract<PlanResult, { kind: 'duplicate' | 'skipped' }> | null;
  /** stores an invalid manifest line; true when it was not known before */
  invalidLine(source: string, message: string, now: number): boolean;
  claim(key: string, owner: string, now: number, ttlMs: number, opts?: ClaimOptions): boolean;
  renew(owner: string, now: number, ttlMs: number): number;
  finish(key: string, owner: string, outcome: Outcome, now: number): boolean;
  release(key: string, owner: string, now: number): boolean;
  recordAttempt(attempt: AttemptRow): void;
  getPart(jobKey: string): PartRow | undefined;
  savePart(jobKey: string, part: PartRow, now: number): void;
  dropPart(jobKey: string): void;
  beginOp(key: string, jobKey: string, kind: OpRow['kind'], owner: string, now: number, detail?: string | null): OpResult;
  /**
   * Whether `owner` still holds the job's lease, from the leases this ledger object claimed and
   * renewed (no query): lost only by expiry, or to a writer that broke the lease protocol.
   */
  holds(key: string, owner: string, now: number): boolean;
  /** The same, asked of the table itself: also sees a lease taken over early (clocks that disagree). */
  holdsInTable(key: string, owner: string, now: number): boolean;
  /** reconcile only: one of the REPAIRS moves, guarded by the expected current state */
  repair(key: string, from: JobState, to: JobState, patch: RepairPatch, now: number): boolean;
  ops(state: OpRow['state']): OpRow[];
  /** done finalize ops whose job never recorded the finish */
  unrecordedFinalizes(): OpRow[];
  partKeys(): string[];
  doneKeysBySha(sha256: string): string[];
  jobsIn(state: JobState): IterableIterator<JobRow>;
  dropOp(key: string): void;
  job(key: string): JobRow | undefined;
  finishOp(key: string, result: unknown, now: number): void;
  /** An op begun and finished at once (its effect is already complete): done with its result. */
  recordOp(key: string, jobKey: string, kind: OpRow['kind'], owner: string, now: number, detail: string | null, result: unknown): void;
  /** one host's stored row (its breaker, pause and failures), as written so far in this run too */
  host(name: string): (HostRow & { updated_at: number }) | undefined;
  saveHost(row: HostRow, now: number): void;
  /**
   * Takes a paced host for one request now, for every process on this ledger: null when it was
   * free (it is free again `spacingMs` later), else the time it is next free.
   */
  takeHostSlot(host: string, spacingMs: number, now: number): number | null;
  /** The host is not free before `at` (a request left later than it was let through). */
  hostNotBefore(host: string, at: number): void;
  /**
   * One of the host's `cap` permits for a task in flight, counted across every process on this
   * ledger: its id, or null when all are held. A permit expires with its owner's leases (renew
   * extends both) unless freed first.
   */
  takeHostPermit(host: string, owner: string, cap: number, now: number, ttlMs: number): number | null;
  freeHostPermit(id: number): void;
  /** Frees the permits of owners that are processes of this machine no longer running. */
  dropDeadPermits(): number;
  /**
   * The host's consecutive failures, counted by every process on the ledger: one more (`failed`)
   * or none (a success); returns the count.
   */
  countHostFailure(host: string, failed: boolean, now: number): number;
  /** commit what is pending now (a durability point), instead of at the end of the group */
  flush(): void;
  /**
   * Resolves once every write made so far is committed, by the group's commit. `soon`: brought
   * forward to the end of the current turn (writes of that turn share it); otherwise the group
   * commits when it would anyway (a few milliseconds). Rejects if that commit fails.
   */
  committed(when?: 'soon' | 'with-group'): Promise<void>;
  close(): void;
}

import { describeReason } from './errors.js';
import type { JobRow, RecordStatus } from './ledger/types.js';

/** One NDJSON line per manifest item; field order is part of the contract (SPEC §5). */
export interface DownloadRecord {
  id: string | null;
  url: string | null;
  canonical_url: string | null;
  final_url: string | null;
  status: RecordStatus;
  reason: string | null;
  http_status: number | null;
  sha256: string | null;
  bytes: number | null;
  path: string | null;
  content_type: string | null;
  etag: string | null;
  last_modified: string | null;
  resumed_from: number | null;
  attempts: number;
  elapsed_ms: number;
  /** which resolver supplied `url` (null: the manifest), and the landing page that named it (SPEC §9) */
  resolver: string | null;
  landing_url: string | null;
  source: string | null;
  /** failed and invalid records: why, in words */
  message?: string;
  /** failed records: whether this run asked the network for it (false: a known failure, SPEC §8) */
  attempted?: boolean;
}

export const RECORD_FIELDS: readonly (keyof DownloadRecord)[] = [
  'id', 'url', 'canonical_url', 'final_url', 'status', 'reason', 'http_status', 'sha256', 'bytes', 'path',
  'content_type', 'etag', 'last_modified', 'resumed_from', 'attempts', 'elapsed_ms', 'resolver', 'landing_url', 'source',
];

/**
 * A record from a job row, optionally overlaid with a fresh outcome (or a status such as skipped).
 * A failed one carries its message and `attempted` (whether this run went to the network for it).
 */
export function recordFromRow(row: JobRow, override: Partial<JobRow> = {}, attempted = true): DownloadRecord {
  const o = { ...row, ...override };
  const r: DownloadRecord = {
    id: o.item_id,
    url: o.url ?? o.canonical_url,
    canonical_url: o.canonical_url,
    final_url: o.final_url,
    status: o.status ?? 'failed',
    reason: o.reason,
    http_status: o.http_status,
    sha256: o.sha256,
    bytes: o.bytes,
    path: o.path,
    content_type: o.content_type,
    etag: o.etag,
    last_modified: o.last_modified,
    resumed_from: o.resumed_from ?? 0,
    attempts: o.attempts ?? 0,
    elapsed_ms: o.elapsed_ms ?? 0,
    resolver: o.resolver ?? null,
    landing_url: o.landing_url ?? null,
    source: o.source,
  };
  if (r.status === 'failed') {
    r.message = o.message ?? describeReason(o.reason ?? 'failed');
    r.attempted = attempted;
  }
  return r;
}

/** A job that failed in an earlier run and is not asked again in this one (SPEC §8). */
export function knownFailure(row: JobRow, source: string | null): DownloadRecord {
  const next = row.next_attempt_at === null ? 'not asked again without --retry-failed' : `next attempt after ${new Date(row.next_attempt_at).toISOString()}`;
  const message = `${row.message ?? describeReason(row.reason ?? 'failed')} (failed in an earlier run; ${next})`;
  return recordFromRow(row, { status: 'failed', message, attempts: 0, elapsed_ms: 0, resumed_from: 0, source: source ?? row.source }, false);
}

export function invalidRecord(source: string, reason: 'invalid_line', message: string): DownloadRecord & { message: string } {
  return {
    id: null, url: null, canonical_url: null, final_url: null, status: 'invalid', reason, http_status: null, sha256: null,
    bytes: null, path: null, content_type: null, etag: null, last_modified: null, resumed_from: 0, attempts: 0,
    elapsed_ms: 0, resolver: null, landing_url: null, source, message,
  };
}

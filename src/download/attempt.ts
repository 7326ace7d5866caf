import { statSync } from 'node:fs';
import { ItemError } from '../errors.js';
import { keepsPart } from '../http/classify.js';
import type { AttemptRow, JobRow, PartRow } from '../ledger/types.js';
import type { Candidate } from '../manifest/parse.js';
import { fileIdentity } from '../store/finalize.js';
import { partPath } from '../store/paths.js';
import type { ItemContext } from './item.js';
import { discardPart, replayStream, StreamOp } from './ops.js';
import { emptyFacts, transfer, type AttemptFacts, type TransferInput, type TransferResult } from './transfer.js';

/** A transfer that worked; its attempt row is written once the outcome (stored, deduped…) is known. */
export type Fetched = TransferResult & { recordAttempt: (extra: Partial<AttemptRow>) => void };

/** An attempt that failed, with what it saw. */
export interface Tried {
  error: ItemError;
  facts: AttemptFacts;
  candidate: Candidate;
}

type Conditional = TransferInput['conditional'];

/** Whose limits the request goes under, and whether an HTML answer is kept as a page (see Target). */
export type Asking = Pick<TransferInput, 'role' | 'readPages'>;

/** What an earlier attempt or run left for this one: bytes to continue, or a finished stream to replay. */
type Held = { held: number; partRow: PartRow | undefined; id: string | null } | { replayed: { sha256: string; size: number }; held: number; id: string | null };

/**
 * One attempt at one URL, in steps: find what is held (replay a finished stream, or continue a
 * part), transfer, record the stream, check the digest the manifest expects. A part survives a
 * failure that a retry may fix (and an interruption), so the next attempt, or the next run,
 * continues it; any other failure drops it.
 */
export async function attemptOnce(ctx: ItemContext, job: JobRow, candidate: Candidate, attempts: { n: number }, previous: JobRow | null, how: Asking): Promise<Fetched | Tried> {
  const conditional = previous && previous.url === candidate.href ? { etag: previous.etag, lastModified: previous.last_modified } : undefined;
  const facts = emptyFacts();
  attempts.n += 1;
  const record = attemptRecorder(ctx, job, candidate, facts);
  let stream: StreamOp | null = null;
  try {
    const found = await heldPart(ctx, job, conditional);
    if ('replayed' in found) {
      facts.decision = 'replay:stream';
      facts.resumeFrom = found.held;
      ctx.events.emit('op', { kind: 'stream', action: 'replayed', id: job.item_id });
      ctx.offNetwork();
      return { ...facts, ...found.replayed, fsyncMs: null, partId: found.id, notModified: false, recordAttempt: (extra) => record(null, extra) };
    }
    const op = (stream = new StreamOp(ctx, job, found.partRow));
    const result = await transfer({ ...(await transferInput(ctx, job, candidate, found, conditional, op)), ...how }, facts);
    const mismatch = !result.notModified && !expected(job, result.sha256);
    if (mismatch) {
      record('checksum_mismatch', { sha256: result.sha256 });
      await discardPart(ctx, job);
      return { candidate, facts, error: new ItemError('checksum_mismatch', `expected sha256 ${job.expected_sha256}, got ${result.sha256}`, { httpStatus: facts.httpStatus }) };
    }
    // What is left (finalize, link) is local: another transfer may start.
    ctx.offNetwork();
    // A part only verified (416) is the one held: its identity is the one seen before asking.
    return { ...result, ...(result.notModified ? {} : { partId: result.partId ?? found.id }), recordAttempt: (extra) => record(null, extra) };
  } catch (err) {
    if (!(err instanceof ItemError)) throw err;
    record(err.code);
    if (!keepsPart(err.code)) await discardPart(ctx, job);
    else stream?.kept();
    return { candidate, facts, error: err };
  }
}

/** The digest is the one the manifest expects, or it expects none. */
function expected(job: JobRow, sha256: string): boolean {
  return !job.expected_sha256 || sha256 === job.expected_sha256;
}

/** Writes the attempt's row and its resume_decision event, with the facts as they stand then. */
function attemptRecorder(ctx: ItemContext, job: JobRow, candidate: Candidate, facts: AttemptFacts) {
  const started = ctx.now();
  return (error: string | null, extra: Partial<AttemptRow> = {}): void => {
    ctx.ledger.recordAttempt({ job_key: job.key, url: candidate.href, final_url: facts.finalUrl, http_status: facts.httpStatus, bytes: facts.bytes, elapsed_ms: ctx.now() - started, error, resume_from: facts.resumeFrom, resume_decision: facts.decision, started_at: started, ...extra });
    ctx.events.emit('resume_decision', { id: job.item_id, url: candidate.href, decision: facts.decision, resume_from: facts.resumeFrom, bytes: facts.bytes, error });
  };
}

/** The part an earlier attempt or run left: replayed when its stream is done, else continued. */
async function heldPart(ctx: ItemContext, job: JobRow, conditional: Conditional): Promise<Held> {
  const { size: held, id } = conditional ? { size: 0, id: null } : heldPartFile(partPath(ctx.store.local, job.key));
  // No bytes held (the usual case): nothing to continue or replay, so no look-up.
  const partRow = held === 0 ? undefined : ctx.ledger.getPart(job.key);
  const replayed = await replayStream(ctx, job, partRow, held);
  if (replayed === 'stale') return { held: 0, partRow: undefined, id: null };
  if (replayed) return { replayed: { sha256: replayed.sha256, size: replayed.size }, held, id };
  return { held, partRow, id };
}

/** Size and identity of a part left by an earlier attempt or run (usually none: checked in place, see objectExists). */
function heldPartFile(path: string): { size: number; id: string | null } {
  try {
    const st = statSync(path, { bigint: true, throwIfNoEntry: false });
    return st ? { size: Number(st.size), id: fileIdentity(st) } : { size: 0, id: null };
  } catch {
    return { size: 0, id: null };
  }
}

async function transferInput(ctx: ItemContext, job: JobRow, candidate: Candidate, found: { held: number; partRow: PartRow | undefined; id: string | null }, conditional: Conditional, stream: StreamOp): Promise<Omit<TransferInput, keyof Asking>> {
  return {
    url: candidate.href,
    part: partPath(ctx.store.local, job.key),
    out: ctx.store.local,
    headers: ctx.headers,
    auth: candidate.auth,
    policy: ctx.policy,
    hostHeaders: ctx.hostHeaders,
    dispatcher: await ctx.http.dispatcher(),
    maxBytes: ctx.opts.maxBytes,
    minFree: ctx.opts.minFree,
    minSpeed: { bytesPerSecond: ctx.opts.minSpeed, windowMs: ctx.opts.stallTimeout },
    fsync: ctx.opts.fsync,
    signal: ctx.signal,
    held: found.held,
    // a revalidation does not look for a part
    partFile: conditional !== undefined || found.id !== null,
    partRow: found.partRow,
    conditional,
    gate: ctx.gate,
    holds: () => ctx.ledger.holds(job.key, ctx.owner, ctx.now()),
    onFreshPart: (row) => stream.fresh(row),
    onBodyComplete: (body) => {
      stream.done(body);
      // The exchange is over and the body is the one wanted: its fsync and close are local work,
      // which must not keep a network slot (and the host's) from the next transfer. A body that
      // fails its expected digest keeps them: the item goes on to its next URL.
      if (expected(job, body.sha256)) ctx.offNetwork();
    },
  };
}

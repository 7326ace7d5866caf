import { unlinkSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import type { Dispatcher } from 'undici';
import { MAX_REDIRECTS } from '../config.js';
import { ItemError } from '../errors.js';
import type { RequestGate } from '../http/request-gate.js';
import { toItemError } from '../http/classify.js';
import { fetchInto, type BodySink } from '../http/fetch-into.js';
import { parseRetryAfter } from '../http/retry-after.js';
import type { HostHeaders } from '../hosts/headers.js';
import type { UrlPolicy } from '../http/url-policy.js';
import type { PartRow } from '../ledger/types.js';
import { redactCredentials } from '../manifest/canonical-url.js';
import { gateKey, type Role } from '../hosts/policy.js';
import { DecodingSink, decoderFor } from './decode.js';
import { LeaseLost } from './ops.js';
import { HtmlPage, PageFull, PageSink } from './page-sink.js';
import { Discard, DiscardOverflow, OverlapMismatch, PartWriter, readHeld, type HeldState } from './part-writer.js';
import { isStrongEtag, judgeResponse, planResume, rangeFrom, resumeHeaders, type ResumePlan } from './resume.js';

export interface TransferInput {
  url: string;
  part: string;
  out: string;
  headers: Record<string, string>;
  /** Basic authorization from credentials in the manifest URL: for that URL's origin only */
  auth: string | null;
  /** --allow-host, --deny-host, --deny-private: checked for every hop before it is requested */
  policy: UrlPolicy;
  /** per-host secret headers: each hop gets only its own host's */
  hostHeaders: HostHeaders;
  dispatcher: Dispatcher;
  maxBytes: number;
  minFree: number;
  minSpeed: { bytesPerSecond: number; windowMs: number };
  fsync: boolean;
  signal: AbortSignal;
  /** bytes already in the part file */
  held: number;
  /** whether a part file may be there (one of 0 bytes counts): false only when none was found */
  partFile: boolean;
  /** validators the part was started with, if recorded */
  partRow: PartRow | undefined;
  /** --revalidate: validators of the stored object */
  conditional?: { etag: string | null; lastModified: string | null };
  /**
   * Called with the validators of a fresh body before its first byte is written; the body's bytes
   * reach the part only once the promise it may return resolves.
   */
  onFreshPart: (row: PartRow) => Promise<void> | null;
  /** whether this process still holds the item: checked before the part's path is touched */
  holds: () => boolean;
  /** a kept body is whole in its part (not yet fsync'd): see PartWriterOptions.onComplete */
  onBodyComplete: (body: { sha256: string; size: number }) => void;
  /** every request, each redirect hop included, passes the host's gate and reports back to it */
  gate: RequestGate;
  /** whose limits apply: `artifact` for a PDF URL, `landing` for a page a resolver named */
  role: Role;
  /** an answer served as HTML that is not a PDF is kept as a page (HtmlPage) for the landing step */
  readPages: boolean;
}

/** What one attempt saw; filled in as it goes so a failure can still be recorded with its facts. */
export interface AttemptFacts {
  finalUrl: string | null;
  httpStatus: number | null;
  /** body bytes received by this attempt */
  bytes: number;
  contentType: string | null;
  etag: string | null;
  lastModified: string | null;
  resumeFrom: number;
  decision: string;
}

export interface Transferred extends AttemptFacts {
  sha256: string;
  /** size of the complete file */
  size: number;
  fsyncMs: number | null;
  /** which file the part written is (null: the part held was only verified, a 416) */
  partId: string | null;
  notModified: false;
}

export type TransferResult = Transferred | (AttemptFacts & { notModified: true });

export function emptyFacts(): AttemptFacts {
  return { finalUrl: null, httpStatus: null, bytes: 0, contentType: null, etag: null, lastModified: null, resumeFrom: 0, decision: 'fresh' };
}

type Headers = Record<string, string | string[] | undefined>;

function header(h: Headers, name: string): string | null {
  const v = h[name];
  return Array.isArray(v) ? (v[0] ?? null) : (v ?? null);
}

function conditionalHeaders(c: TransferInput['conditional']): Record<string, string> {
  const h: Record<string, string> = {};
  if (c?.etag) h['if-none-match'] = c.etag;
  if (c?.lastModified) h['if-modified-since'] = c.lastModified;
  return h;
}

/** What the response to one request turned out to be. */
type Answer =
  | { kind: 'redirect'; location: string; status: number }
  | { kind: 'not-modified'; headers: Headers }
  | { kind: 'precondition-failed' }
  | { kind: 'refetch' }
  | { kind: 'overlap-mismatch' }
  | { kind: 'error'; status: number; headers: Headers }
  | { kind: 'body'; writer: PartWriter; plan: ResumePlan }
  | { kind: 'page'; sink: PageSink };

function decisionName(plan: ResumePlan): string {
  if (plan.kind === 'fresh') return plan.why === 'no-part' ? 'fresh' : `fresh:${plan.why}`;
  return `${plan.kind}:${plan.why}`;
}

/**
 * One attempt: request (with a range when a part can be continued), follow redirects (each hop
 * checked), and stream the body into the part. The dispatch handler hands each received chunk
 * straight to the PartWriter, which checks, hashes and queues it for the thread pool at once.
 */
export async function transfer(input: TransferInput, facts: AttemptFacts): Promise<TransferResult> {
  let plan: ResumePlan = input.conditional ? { kind: 'fresh', why: 'no-part' } : planResume(input.held, input.partRow, input.url);
  let conditional = input.conditional;
  let url = input.url;
  /** an earlier hop of this attempt was https: secrets never go out over http after it */
  let afterHttps = false;
  let prefix = '';
  // Read before asking: a writer must be ready the moment the body starts (see PartWriter).
  const seed = plan.kind === 'fresh' ? null : await readHeld(input.part, plan.held, plan.held - rangeFrom(plan));
  for (let hop = 0; ; ) {
    facts.decision = prefix + (conditional ? 'revalidate' : decisionName(plan));
    facts.finalUrl = url;
    const target = new URL(url);
    const headers = { ...input.headers, ...hopHeaders(input, target, afterHttps), ...resumeHeaders(plan), ...conditionalHeaders(conditional) };
    const answer = await gatedExchange(input, target, headers, plan, conditional !== undefined, facts, seed);
    switch (answer.kind) {
      case 'redirect': {
        hop += 1;
        if (hop > MAX_REDIRECTS) throw new ItemError('too_many_redirects', `more than ${MAX_REDIRECTS} redirects`, { httpStatus: answer.status });
        afterHttps ||= target.protocol === 'https:';
        url = nextHop(url, answer.location, answer.status);
        continue;
      }
      case 'not-modified':
        return { ...facts, etag: header(answer.headers, 'etag') ?? conditional!.etag, lastModified: header(answer.headers, 'last-modified') ?? conditional!.lastModified, notModified: true };
      case 'precondition-failed':
        // 412: the server refuses our validators; ask again without them.
        conditional = undefined;
        continue;
      case 'refetch':
        plan = { kind: 'fresh', why: 'refetch' };
        continue;
      case 'overlap-mismatch':
        // The bytes held are not what the server has now: never splice, start over from zero.
        await unlink(input.part).catch(() => undefined);
        prefix = `${facts.decision}>mismatch>`;
        plan = { kind: 'fresh', why: 'refetch' };
        url = input.url;
        afterHttps = false;
        continue;
      case 'page':
        throw new HtmlPage(url, answer.sink.html(), facts.httpStatus);
      case 'body': {
        const w = answer.writer;
        facts.resumeFrom = answer.plan.kind === 'fresh' ? 0 : answer.plan.held;
        return { ...facts, sha256: w.sha256!, size: w.size, fsyncMs: w.fsyncMs, partId: w.identity, notModified: false };
      }
    }
  }
}

/**
 * One request through its host's gate: checked against the URL policy, let through by the gate,
 * and reported back to it (an HTTP error becomes the item's error, with its Retry-After).
 */
async function gatedExchange(input: TransferInput, target: URL, headers: Record<string, string>, plan: ResumePlan, conditional: boolean, facts: AttemptFacts, seed: HeldState | null): Promise<Exclude<Answer, { kind: 'error' }>> {
  input.policy.check(target);
  const permit = await input.gate.enter(gateKey(target.hostname, input.role), input.signal);
  facts.httpStatus = null;
  let answer: Answer;
  try {
    // Checked again as the request leaves: it may have waited for a connection, or its process
    // may have been stopped since the gate let it through, past its lease.
    const onSent = (): void => {
      if (!input.holds()) throw new LeaseLost();
      permit.sent();
    };
    answer = await exchange({ ...input, onSent }, target, headers, plan, conditional, facts, seed);
  } catch (err) {
    permit.settle(err instanceof ItemError ? err.code : err instanceof LeaseLost ? null : 'connect_error', null, facts.httpStatus);
    throw err;
  }
  if (answer.kind === 'error') {
    const retryAfterMs = parseRetryAfter(answer.headers['retry-after'], Date.now());
    if (!permit.settle(`http_${answer.status}`, retryAfterMs, answer.status)) {
      throw new ItemError('retry_after_too_long', `Retry-After of ${retryAfterMs} ms is above the cap`, { httpStatus: answer.status, retryAfterMs });
    }
    throw new ItemError(`http_${answer.status}`, `HTTP ${answer.status}`, { httpStatus: answer.status, retryAfterMs });
  }
  permit.settle(null, null, facts.httpStatus);
  return answer;
}

/** The secrets a hop may carry: its own host's headers, and URL credentials on their own origin only. */
function hopHeaders(input: TransferInput, target: URL, afterHttps: boolean): Record<string, string> {
  const h = input.hostHeaders.for(target, afterHttps);
  if (input.auth && target.origin === new URL(input.url).origin) return { ...h, authorization: input.auth };
  return h;
}

function nextHop(from: string, location: string, status: number): string {
  let next: URL;
  try {
    next = new URL(location, from);
  } catch {
    throw new ItemError('blocked', `redirect to an invalid location ${JSON.stringify(redactCredentials(location))}`, { httpStatus: status });
  }
  if (next.protocol !== 'http:' && next.protocol !== 'https:') {
    throw new ItemError('blocked', `redirect to a ${next.protocol} URL`, { httpStatus: status });
  }
  next.hash = '';
  // Credentials in a Location are neither used nor recorded.
  next.username = '';
  next.password = '';
  return next.href;
}

/** What one exchange has seen so far: its answer, and the writer of a body being kept. */
interface Turn {
  answer: Answer | null;
  writer: PartWriter | null;
}

type ExchangeInput = TransferInput & { onSent: () => void };

/** One request and its response: the answer, with the body (if kept) written to the part. */
async function exchange(input: ExchangeInput, target: URL, headers: Record<string, string>, plan: ResumePlan, conditional: boolean, facts: AttemptFacts, seed: HeldState | null): Promise<Answer> {
  const turn: Turn = { answer: null, writer: null };
  try {
    await fetchInto(input.dispatcher, target, headers, input.signal, (statusCode, h, fail) => respond(turn, input, { plan, conditional, facts, seed }, statusCode, h as Headers, fail), input.onSent);
  } catch (err) {
    return failedExchange(turn, err, facts);
  }
  if (turn.writer) facts.bytes += turn.writer.received;
  return turn.answer!;
}

/** The exchange failed: a mismatched overlap or an error body is an answer; anything else is thrown. */
async function failedExchange(turn: Turn, err: unknown, facts: AttemptFacts): Promise<Answer> {
  const w = turn.writer;
  if (w) {
    // The next attempt reads the part's size: it must be final (every accepted byte written).
    await w.close();
    facts.bytes += w.received;
  }
  if (err instanceof OverlapMismatch) return { kind: 'overlap-mismatch' };
  if (err instanceof PageFull && turn.answer?.kind === 'page') return turn.answer;
  if (err instanceof DiscardOverflow && turn.answer?.kind === 'error') return turn.answer;
  const e = toItemError(err);
  if (e.code === 'connect_error' && w && !w.complete) {
    // The connection ended inside the body: the part keeps what arrived, for a resume.
    throw new ItemError('size_mismatch', `connection closed after ${w.received} body bytes`, { httpStatus: facts.httpStatus, cause: err });
  }
  throw e;
}

interface Asked {
  plan: ResumePlan;
  conditional: boolean;
  facts: AttemptFacts;
  seed: HeldState | null;
}

/**
 * Judges a response from its status and headers: a redirect, a 304 or 412 to a conditional
 * request, a range answer that cannot be trusted, or an error is answered with its body
 * discarded; a body to keep goes to a PartWriter (through a decoder if it is encoded).
 */
function respond(turn: Turn, input: TransferInput, asked: Asked, statusCode: number, rh: Headers, fail: (err: Error) => void): BodySink {
  const { plan, conditional, facts } = asked;
  facts.httpStatus = statusCode;
  const verdict = judgeResponse(plan, statusCode, header(rh, 'content-range'), input.partRow);
  const early = earlyAnswer(statusCode, rh, header(rh, 'location'), conditional, verdict);
  if (early) {
    turn.answer = early;
    return new Discard(early.kind === 'error' ? 64 * 1024 : undefined);
  }
  const decoder = decoderFor(header(rh, 'content-encoding'));
  if (decoder === 'unsupported') throw new ItemError('not_pdf', `unsupported Content-Encoding ${JSON.stringify(header(rh, 'content-encoding'))}`, { httpStatus: statusCode });
  if (decoder && verdict !== 'restart') {
    // A range of an encoded body cannot be appended to decoded bytes: ask for all of it.
    decoder.destroy();
    turn.answer = { kind: 'refetch' };
    return new Discard();
  }
  const writer = bodyWriter(input, asked, statusCode, rh, verdict as 'append' | 'restart' | 'complete', decoder !== null);
  turn.writer = writer;
  turn.answer = { kind: 'body', writer, plan: verdict === 'restart' ? { kind: 'fresh', why: plan.kind === 'fresh' ? plan.why : 'no-part' } : plan };
  let sink: BodySink = writer;
  if (input.readPages && /html/i.test(header(rh, 'content-type') ?? '')) {
    const page: PageSink = new PageSink(writer, () => (turn.answer = { kind: 'page', sink: page }));
    sink = page;
  }
  return decoder ? new DecodingSink(decoder, sink, fail) : sink;
}

/** Every answer whose body is not kept, or null for a body to write. */
function earlyAnswer(statusCode: number, rh: Headers, location: string | null, conditional: boolean, verdict: ReturnType<typeof judgeResponse>): Answer | null {
  if (statusCode >= 300 && statusCode < 400 && statusCode !== 304 && location) return { kind: 'redirect', location, status: statusCode };
  if (conditional && statusCode === 304) return { kind: 'not-modified', headers: rh };
  if (conditional && statusCode === 412) return { kind: 'precondition-failed' };
  if (verdict === 'refetch') return { kind: 'refetch' };
  if (verdict === 'error') return { kind: 'error', status: statusCode, headers: rh };
  return null;
}

function dropOldPart(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/** The writer of a kept body: fresh (its validators stored first), appended, or only checked. */
function bodyWriter(input: TransferInput, asked: Asked, statusCode: number, rh: Headers, verdict: 'append' | 'restart' | 'complete', encoded: boolean): PartWriter {
  const { plan, facts, seed } = asked;
  facts.contentType = header(rh, 'content-type');
  facts.etag = header(rh, 'etag');
  facts.lastModified = header(rh, 'last-modified');
  const length = header(rh, 'content-length');
  // Content-Length counts encoded bytes; undici itself holds the body to it.
  const declared = length !== null && /^\d+$/.test(length) && !encoded ? Number(length) : null;
  let writesAfter: Promise<void> | null = null;
  // The answer may come long after the request left (a process stopped in between, past its
  // lease): by then the part's path may be its successor's, which must not be unlinked, truncated
  // or appended to.
  if (!input.holds()) throw new LeaseLost();
  if (verdict === 'restart') {
    // The bytes of an earlier version go before the new validators are stored: the part is
    // truncated only when its file opens, on the thread pool, which may come after the ledger's
    // commit; a kill in between left old bytes under new validators, and the next resume spliced
    // the new version's tail onto them.
    // No part found at the attempt's start and none made since: no file to drop (an unlink that
    // fails costs a thrown error per item).
    if (input.partFile || plan.kind !== 'fresh' || plan.why !== 'no-part') dropOldPart(input.part);
    // An encoded body's part keeps no validators: it is never continued with a range.
    const strong = !encoded && isStrongEtag(facts.etag);
    writesAfter = input.onFreshPart({ url: input.url, etag: strong ? facts.etag : null, last_modified: encoded ? null : facts.lastModified, total: declared });
    // Observed here too: a writer refused below (too large, no space) never waits on it.
    writesAfter?.catch(() => undefined);
  }
  const held = verdict === 'restart' || plan.kind === 'fresh' ? 0 : plan.held;
  return new PartWriter({
    path: input.part,
    mode: verdict === 'restart' ? 'fresh' : verdict === 'append' ? 'append' : 'complete',
    held,
    overlap: verdict === 'append' && plan.kind === 'overlap' ? plan.held - rangeFrom(plan) : 0,
    declared,
    httpStatus: statusCode,
    maxBytes: input.maxBytes,
    minFree: input.minFree,
    out: input.out,
    fsync: input.fsync,
    minSpeed: input.minSpeed,
    writesAfter,
    onComplete: input.onBodyComplete,
  }, verdict === 'restart' ? null : seed);
}

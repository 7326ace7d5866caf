import { createHash, type Hash } from 'node:crypto';
import { closeSync, fsync, openSync, writeSync } from 'node:fs';
import { open as openFile, unlink } from 'node:fs/promises';
import { promisify } from 'node:util';
import { request, type Dispatcher } from 'undici';
import { MAX_REDIRECTS, QUOTA_RECHECK_BYTES } from '../config.js';
import { ItemError } from '../errors.js';
import { toItemError } from '../http/classify.js';
import { parseRetryAfter } from '../http/retry-after.js';
import type { PartRow } from '../ledger/types.js';
import { checkQuota } from '../store/quota.js';
import { isStrongEtag, judgeResponse, planResume, rangeFrom, resumeHeaders, type ResumePlan } from './resume.js';
import { PdfSniffer } from './validate.js';

const fsyncAsync = promisify(fsync);
const READ_CHUNK = 1024 * 1024;

export interface TransferInput {
  url: string;
  part: string;
  out: string;
  headers: Record<string, string>;
  dispatcher: Dispatcher;
  maxBytes: number;
  minFree: number;
  fsync: boolean;
  signal: AbortSignal;
  /** bytes already in the part file */
  held: number;
  /** validators the part was started with, if recorded */
  partRow: PartRow | undefined;
  /** --revalidate: validators of the stored object */
  conditional?: { etag: string | null; lastModified: string | null };
  /** called with the validators of a fresh body before its first byte is written */
  onFreshPart: (row: PartRow) => void;
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
  notModified: false;
}

export type TransferResult = Transferred | (AttemptFacts & { notModified: true });

export function emptyFacts(): AttemptFacts {
  return { finalUrl: null, httpStatus: null, bytes: 0, contentType: null, etag: null, lastModified: null, resumeFrom: 0, decision: 'fresh' };
}

function header(h: Dispatcher.ResponseData['headers'], name: string): string | null {
  const v = h[name];
  return Array.isArray(v) ? (v[0] ?? null) : (v ?? null);
}

/** Follows redirects itself (at most MAX_REDIRECTS) so every hop is seen and checked. */
async function fetchFollowing(input: TransferInput, headers: Record<string, string>, facts: AttemptFacts): Promise<Dispatcher.ResponseData> {
  let url = input.url;
  for (let hop = 0; ; hop += 1) {
    facts.finalUrl = url;
    const res = await request(url, { method: 'GET', headers, dispatcher: input.dispatcher, signal: input.signal });
    facts.httpStatus = res.statusCode;
    const location = header(res.headers, 'location');
    if (res.statusCode < 300 || res.statusCode >= 400 || res.statusCode === 304 || !location) return res;
    await res.body.dump();
    if (hop >= MAX_REDIRECTS) throw new ItemError('too_many_redirects', `more than ${MAX_REDIRECTS} redirects`, { httpStatus: res.statusCode });
    let next: URL;
    try {
      next = new URL(location, url);
    } catch {
      throw new ItemError('blocked', `redirect to an invalid location ${JSON.stringify(location)}`, { httpStatus: res.statusCode });
    }
    if (next.protocol !== 'http:' && next.protocol !== 'https:') {
      throw new ItemError('blocked', `redirect to a ${next.protocol} URL`, { httpStatus: res.statusCode });
    }
    next.hash = '';
    url = next.href;
  }
}

function conditionalHeaders(c: TransferInput['conditional']): Record<string, string> {
  const h: Record<string, string> = {};
  if (c?.etag) h['if-none-match'] = c.etag;
  if (c?.lastModified) h['if-modified-since'] = c.lastModified;
  return h;
}

/**
 * Feeds the held bytes to the hash and the sniffer: the one and only read of the part. Returns
 * the last `tail` bytes, which an overlap check compares with what the server sends again.
 */
async function readHeld(path: string, held: number, hash: Hash, sniffer: PdfSniffer, tail: number): Promise<Buffer> {
  const fh = await openFile(path, 'r');
  const buf = Buffer.allocUnsafe(READ_CHUNK);
  const kept = Buffer.alloc(tail);
  try {
    for (let pos = 0; pos < held; ) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(READ_CHUNK, held - pos), pos);
      if (bytesRead === 0) throw new ItemError('size_mismatch', `part shrank to ${pos} bytes while resuming`);
      const chunk = buf.subarray(0, bytesRead);
      hash.update(chunk);
      sniffer.push(chunk);
      const end = pos + bytesRead;
      if (end > held - tail) {
        const from = Math.max(pos, held - tail);
        chunk.copy(kept, from - (held - tail), from - pos, bytesRead);
      }
      pos = end;
    }
  } finally {
    await fh.close();
  }
  return kept;
}

class OverlapMismatch extends Error {}

/**
 * One attempt: request (with a range when a part can be continued), stream into the part with a
 * rolling SHA-256 (held bytes are read once, new bytes never), sniff the PDF header, enforce
 * --max-bytes, Content-Length and the quota, fsync. The part is left for the caller to finalize.
 */
export async function transfer(input: TransferInput, facts: AttemptFacts): Promise<TransferResult> {
  let plan: ResumePlan = input.conditional ? { kind: 'fresh', why: 'no-part' } : planResume(input.held, input.partRow, input.url);
  let conditional = input.conditional;
  let res: Dispatcher.ResponseData;
  let verdict;
  for (;;) {
    facts.decision = plan.kind === 'fresh' ? (plan.why === 'no-part' ? 'fresh' : `fresh:${plan.why}`) : `${plan.kind}:${plan.why}`;
    try {
      res = await fetchFollowing(input, { ...input.headers, ...resumeHeaders(plan), ...conditionalHeaders(conditional) }, facts);
    } catch (err) {
      throw toItemError(err);
    }
    if (conditional && (res.statusCode === 304 || res.statusCode === 412)) {
      await res.body.dump().catch(() => undefined);
      if (res.statusCode === 304) return { ...facts, etag: header(res.headers, 'etag') ?? conditional.etag, lastModified: header(res.headers, 'last-modified') ?? conditional.lastModified, notModified: true };
      // 412: the server refuses our validators; ask again without them.
      conditional = undefined;
      facts.decision = 'revalidate:412';
      continue;
    }
    verdict = judgeResponse(plan, res.statusCode, header(res.headers, 'content-range'), input.partRow);
    if (verdict !== 'refetch') break;
    await res.body.dump().catch(() => undefined);
    plan = { kind: 'fresh', why: 'refetch' };
  }
  const body = res.body;
  if (verdict === 'error') {
    await body.dump().catch(() => undefined);
    throw new ItemError(`http_${res.statusCode}`, `HTTP ${res.statusCode}`, {
      httpStatus: res.statusCode,
      retryAfterMs: parseRetryAfter(res.headers['retry-after'], Date.now()),
    });
  }
  facts.contentType = header(res.headers, 'content-type');
  facts.etag = header(res.headers, 'etag');
  facts.lastModified = header(res.headers, 'last-modified');
  const lengthHeader = header(res.headers, 'content-length');
  const declared = lengthHeader !== null && /^\d+$/.test(lengthHeader) ? Number(lengthHeader) : null;
  const abandon = (err: Error): never => {
    // The abort error undici emits for an abandoned body is expected, not a failure.
    body.on('error', () => undefined);
    body.destroy();
    throw err;
  };

  const appending = verdict === 'append' || verdict === 'complete';
  const start = appending ? rangeFrom(plan) : 0;
  const held = appending && plan.kind !== 'fresh' ? plan.held : 0;
  let overlap = verdict === 'append' && plan.kind === 'overlap' ? plan.overlap : 0;
  if (declared !== null && start + declared > input.maxBytes) {
    abandon(new ItemError('too_large', `size ${start + declared} exceeds --max-bytes ${input.maxBytes}`, { httpStatus: res.statusCode }));
  }
  try {
    await checkQuota(input.out, declared === null ? 0 : start + declared - held, input.minFree);
  } catch (err) {
    if (!appending) await unlink(input.part).catch(() => undefined);
    abandon(err as Error);
  }

  const hash = createHash('sha256');
  const sniffer = new PdfSniffer();
  let tail: Buffer = Buffer.alloc(0);
  if (appending) {
    tail = await readHeld(input.part, held, hash, sniffer, overlap);
    facts.resumeFrom = held;
  } else {
    input.onFreshPart({ url: input.url, etag: isStrongEtag(facts.etag) ? facts.etag : null, last_modified: facts.lastModified, total: declared });
  }
  let size = held;
  if (verdict === 'complete') {
    await body.dump().catch(() => undefined);
  } else {
    const fd = openSync(input.part, appending ? 'a' : 'w');
    let open = true;
    const closeOnce = (): void => {
      // Never close twice: the number may already belong to another file.
      if (open) closeSync(fd);
      open = false;
    };
    let nextQuotaCheck = size + QUOTA_RECHECK_BYTES;
    try {
      try {
        for await (const raw of body as AsyncIterable<Buffer>) {
          let chunk = raw;
          facts.bytes += chunk.length;
          if (overlap > 0) {
            const n = Math.min(overlap, chunk.length);
            const offset = tail.length - overlap;
            if (!chunk.subarray(0, n).equals(tail.subarray(offset, offset + n))) abandon(new OverlapMismatch());
            overlap -= n;
            chunk = chunk.subarray(n);
            if (chunk.length === 0) continue;
          }
          size += chunk.length;
          if (size > input.maxBytes) abandon(new ItemError('too_large', `body exceeds --max-bytes ${input.maxBytes}`, { httpStatus: res.statusCode }));
          if (!sniffer.push(chunk)) abandon(new ItemError('not_pdf', 'no %PDF- header in the first 1024 bytes', { httpStatus: res.statusCode }));
          hash.update(chunk);
          writeSync(fd, chunk);
          if (declared === null && size >= nextQuotaCheck) {
            // Unknown length: keep checking free space as the body grows.
            nextQuotaCheck = size + QUOTA_RECHECK_BYTES;
            await checkQuota(input.out, 0, input.minFree).catch((err: Error) => abandon(err));
          }
        }
      } catch (err) {
        if (err instanceof OverlapMismatch) throw err;
        const e = toItemError(err);
        if (declared !== null && facts.bytes < declared && e.code === 'connect_error') {
          throw new ItemError('size_mismatch', `connection closed after ${facts.bytes} of ${declared} bytes`, { httpStatus: res.statusCode, cause: err });
        }
        throw e;
      }
      if (overlap > 0) throw new OverlapMismatch();
      if (declared !== null && facts.bytes !== declared) {
        throw new ItemError('size_mismatch', `received ${facts.bytes} bytes, Content-Length says ${declared}`, { httpStatus: res.statusCode });
      }
      if (input.fsync) await fsyncAsync(fd);
    } catch (err) {
      if (!(err instanceof OverlapMismatch)) throw err;
      // The bytes held are not what the server has now: never splice, start over.
      closeOnce();
      await unlink(input.part).catch(() => undefined);
      const again = await transfer({ ...input, held: 0, partRow: undefined }, facts);
      facts.decision = `overlap-mismatch>${facts.decision}`;
      return again;
    } finally {
      closeOnce();
    }
  }
  if (!sniffer.finish()) throw new ItemError('not_pdf', 'no %PDF- header in the body', { httpStatus: res.statusCode });
  return { ...facts, sha256: hash.digest('hex'), size, notModified: false };
}

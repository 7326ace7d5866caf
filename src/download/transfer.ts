import { createHash } from 'node:crypto';
import { closeSync, fsync, openSync, writeSync } from 'node:fs';
import { promisify } from 'node:util';
import { request, type Dispatcher } from 'undici';
import { MAX_REDIRECTS } from '../config.js';
import { ItemError } from '../errors.js';
import { toItemError } from '../http/classify.js';
import { parseRetryAfter } from '../http/retry-after.js';
import { checkQuota } from '../store/quota.js';
import { PdfSniffer } from './validate.js';

const fsyncAsync = promisify(fsync);

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
}

/** What one attempt saw; filled in as it goes so a failure can still be recorded with its facts. */
export interface AttemptFacts {
  finalUrl: string | null;
  httpStatus: number | null;
  bytes: number;
  contentType: string | null;
  etag: string | null;
  lastModified: string | null;
}

export interface Transferred extends AttemptFacts {
  sha256: string;
}

function header(h: Dispatcher.ResponseData['headers'], name: string): string | null {
  const v = h[name];
  return Array.isArray(v) ? (v[0] ?? null) : (v ?? null);
}

/** Follows redirects itself (at most MAX_REDIRECTS) so every hop is seen and checked. */
async function fetchFollowing(input: TransferInput, facts: AttemptFacts): Promise<Dispatcher.ResponseData> {
  let url = input.url;
  for (let hop = 0; ; hop += 1) {
    facts.finalUrl = url;
    const res = await request(url, { method: 'GET', headers: input.headers, dispatcher: input.dispatcher, signal: input.signal });
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

/**
 * One attempt: request, stream into the part with a rolling SHA-256 (the file is never read back),
 * sniff the PDF header, enforce --max-bytes and Content-Length, fsync. The part is left in place
 * for the caller to finalize or remove.
 */
export async function transfer(input: TransferInput, facts: AttemptFacts): Promise<Transferred> {
  let res: Dispatcher.ResponseData;
  try {
    res = await fetchFollowing(input, facts);
  } catch (err) {
    throw toItemError(err);
  }
  const body = res.body;
  if (res.statusCode !== 200) {
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
  const fail = async (err: ItemError): Promise<never> => {
    // Abandon the rest of the body; the abort error undici then emits is expected, not a failure.
    body.on('error', () => undefined);
    body.destroy();
    throw err;
  };
  if (declared !== null && declared > input.maxBytes) {
    await fail(new ItemError('too_large', `Content-Length ${declared} exceeds --max-bytes ${input.maxBytes}`, { httpStatus: 200 }));
  }
  try {
    await checkQuota(input.out, declared ?? 0, input.minFree);
  } catch (err) {
    await fail(err as ItemError);
  }

  const fd = openSync(input.part, 'w');
  const hash = createHash('sha256');
  const sniffer = new PdfSniffer();
  try {
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        facts.bytes += chunk.length;
        if (facts.bytes > input.maxBytes) {
          await fail(new ItemError('too_large', `body exceeds --max-bytes ${input.maxBytes}`, { httpStatus: 200 }));
        }
        if (!sniffer.push(chunk)) await fail(new ItemError('not_pdf', 'no %PDF- header in the first 1024 bytes', { httpStatus: 200 }));
        hash.update(chunk);
        writeSync(fd, chunk);
      }
    } catch (err) {
      const e = toItemError(err);
      if (declared !== null && facts.bytes < declared && e.code === 'connect_error') {
        throw new ItemError('size_mismatch', `connection closed after ${facts.bytes} of ${declared} bytes`, { httpStatus: 200, cause: err });
      }
      throw e;
    }
    if (declared !== null && facts.bytes !== declared) {
      throw new ItemError('size_mismatch', `received ${facts.bytes} bytes, Content-Length says ${declared}`, { httpStatus: 200 });
    }
    if (!sniffer.finish()) throw new ItemError('not_pdf', 'no %PDF- header in the body', { httpStatus: 200 });
    if (input.fsync) await fsyncAsync(fd);
  } finally {
    closeSync(fd);
  }
  return { ...facts, sha256: hash.digest('hex') };
}

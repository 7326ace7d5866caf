import type { PartRow } from '../ledger/types.js';

/**
 * Pure resume decisions (RFC 7233 ranges, RFC 7232 validators). A part is continued only when the
 * server proves it is the same representation: a strong ETag or Last-Modified in If-Range, or,
 * without validators, an overlap of the last bytes held that must come back identical.
 */
export const OVERLAP_BYTES = 64 * 1024;

export type ResumePlan =
  | { kind: 'fresh'; why: 'no-part' | 'small-part' | 'no-record' | 'url-changed' | 'refetch' }
  | { kind: 'range'; held: number; ifRange: string; why: 'etag' | 'last-modified' }
  | { kind: 'overlap'; held: number; overlap: number; why: 'no-validators' };

export function isStrongEtag(etag: string | null): etag is string {
  return etag !== null && /^"[^"]*"$/.test(etag);
}

export function planResume(held: number, part: PartRow | undefined, url: string): ResumePlan {
  if (held <= 0) return { kind: 'fresh', why: 'no-part' };
  if (!part) return held > OVERLAP_BYTES ? { kind: 'overlap', held, overlap: OVERLAP_BYTES, why: 'no-validators' } : { kind: 'fresh', why: 'no-record' };
  if (part.url !== url) return { kind: 'fresh', why: 'url-changed' };
  if (part.total !== null && held > part.total) return { kind: 'fresh', why: 'url-changed' };
  if (isStrongEtag(part.etag)) return { kind: 'range', held, ifRange: part.etag, why: 'etag' };
  if (part.last_modified) return { kind: 'range', held, ifRange: part.last_modified, why: 'last-modified' };
  if (held <= OVERLAP_BYTES) return { kind: 'fresh', why: 'small-part' };
  return { kind: 'overlap', held, overlap: OVERLAP_BYTES, why: 'no-validators' };
}

/** First byte asked for: the end of the part, or `overlap` bytes before it. */
export function rangeFrom(plan: ResumePlan): number {
  if (plan.kind === 'range') return plan.held;
  if (plan.kind === 'overlap') return plan.held - plan.overlap;
  return 0;
}

export function resumeHeaders(plan: ResumePlan): Record<string, string> {
  if (plan.kind === 'fresh') return {};
  const h: Record<string, string> = { range: `bytes=${rangeFrom(plan)}-` };
  if (plan.kind === 'range') h['if-range'] = plan.ifRange;
  return h;
}

export interface ContentRange {
  start: number | null;
  end: number | null;
  total: number | null;
}

/** `bytes 100-199/1000`, `bytes 100-199/*`, `bytes *\/1000`. */
export function parseContentRange(value: string | null): ContentRange | null {
  if (!value) return null;
  const m = /^bytes\s+(?:(\d+)-(\d+)|\*)\/(\d+|\*)$/i.exec(value.trim());
  if (!m) return null;
  return {
    start: m[1] !== undefined ? Number(m[1]) : null,
    end: m[2] !== undefined ? Number(m[2]) : null,
    total: m[3] !== '*' ? Number(m[3]) : null,
  };
}

/**
 * What to do with the response to a (possibly ranged) request:
 *   append   - the 206 continues exactly the held bytes (after the overlap check, if any)
 *   restart  - a 200: the content changed or ranges are unsupported; write this body from zero
 *   complete - a 416 proving the held part is already the whole representation
 *   refetch  - the answer cannot be trusted; drop the part and ask again without a range
 *   error    - any other status: handled as an HTTP failure
 */
export type Verdict = 'append' | 'restart' | 'complete' | 'refetch' | 'error';

export function judgeResponse(plan: ResumePlan, status: number, contentRange: string | null, part: PartRow | undefined): Verdict {
  if (status === 200) return 'restart';
  if (plan.kind === 'fresh') return 'error';
  const cr = parseContentRange(contentRange);
  const expectedTotal = part?.total ?? null;
  if (status === 206) {
    if (!cr || cr.start !== rangeFrom(plan) || cr.total === null) return 'refetch';
    if (expectedTotal !== null && cr.total !== expectedTotal) return 'refetch';
    if (cr.end !== cr.total - 1) return 'refetch';
    return 'append';
  }
  if (status === 416) {
    if (plan.kind === 'range' && cr?.total === plan.held && (expectedTotal === null || expectedTotal === plan.held)) return 'complete';
    return 'refetch';
  }
  return 'error';
}

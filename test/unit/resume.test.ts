import { describe, expect, it } from 'vitest';
import { OVERLAP_BYTES, judgeResponse, parseContentRange, planResume, resumeHeaders, type ResumePlan } from '../../src/download/resume.js';
import type { PartRow } from '../../src/ledger/types.js';

const part = (p: Partial<PartRow> = {}): PartRow => ({ url: 'u', etag: null, last_modified: null, total: 1000_000, ...p });

describe('planResume', () => {
  it('starts fresh without a part, for another URL, or when the part is longer than the total', () => {
    expect(planResume(0, part({ etag: '"x"' }), 'u')).toMatchObject({ kind: 'fresh', why: 'no-part' });
    expect(planResume(500, part({ etag: '"x"' }), 'other')).toMatchObject({ kind: 'fresh', why: 'url-changed' });
    expect(planResume(2_000_000, part({ etag: '"x"' }), 'u')).toMatchObject({ kind: 'fresh' });
  });
  it('prefers a strong ETag, then Last-Modified, never a weak ETag', () => {
    expect(planResume(500, part({ etag: '"x"', last_modified: 'LM' }), 'u')).toEqual({ kind: 'range', held: 500, ifRange: '"x"', why: 'etag' });
    expect(planResume(500, part({ etag: 'W/"x"', last_modified: 'LM' }), 'u')).toEqual({ kind: 'range', held: 500, ifRange: 'LM', why: 'last-modified' });
  });
  it('without validators, checks an overlap, or starts over when the part is no bigger than it', () => {
    expect(planResume(OVERLAP_BYTES * 3, part(), 'u')).toEqual({ kind: 'overlap', held: OVERLAP_BYTES * 3, overlap: OVERLAP_BYTES, why: 'no-validators' });
    expect(planResume(OVERLAP_BYTES, part(), 'u')).toMatchObject({ kind: 'fresh', why: 'small-part' });
    expect(planResume(OVERLAP_BYTES * 3, undefined, 'u')).toMatchObject({ kind: 'overlap' });
    expect(planResume(100, undefined, 'u')).toMatchObject({ kind: 'fresh', why: 'no-record' });
  });
  it('builds Range and If-Range headers', () => {
    expect(resumeHeaders({ kind: 'range', held: 10, ifRange: '"e"', why: 'etag' })).toEqual({ range: 'bytes=10-', 'if-range': '"e"' });
    expect(resumeHeaders({ kind: 'overlap', held: 100_000, overlap: 65_536, why: 'no-validators' })).toEqual({ range: `bytes=${100_000 - 65_536}-` });
    expect(resumeHeaders({ kind: 'fresh', why: 'no-part' })).toEqual({});
  });
});

describe('judgeResponse', () => {
  const range: ResumePlan = { kind: 'range', held: 500, ifRange: '"e"', why: 'etag' };
  const p = part({ etag: '"e"', total: 1000 });
  it('appends only a 206 that starts at the held offset with the recorded total', () => {
    expect(judgeResponse(range, 206, 'bytes 500-999/1000', p)).toBe('append');
    expect(judgeResponse(range, 206, 'bytes 400-999/1000', p)).toBe('refetch');
    expect(judgeResponse(range, 206, 'bytes 500-1099/1100', p)).toBe('refetch');
    expect(judgeResponse(range, 206, 'bytes 500-600/1000', p)).toBe('refetch');
    expect(judgeResponse(range, 206, null, p)).toBe('refetch');
  });
  it('restarts from a 200, finishes on a 416 proving completeness, refetches otherwise', () => {
    expect(judgeResponse(range, 200, null, p)).toBe('restart');
    const full: ResumePlan = { kind: 'range', held: 1000, ifRange: '"e"', why: 'etag' };
    expect(judgeResponse(full, 416, 'bytes */1000', p)).toBe('complete');
    expect(judgeResponse(range, 416, 'bytes */1000', p)).toBe('refetch');
    expect(judgeResponse(range, 404, null, p)).toBe('error');
    expect(judgeResponse({ kind: 'fresh', why: 'no-part' }, 206, 'bytes 0-9/10', undefined)).toBe('error');
  });
  it('parses Content-Range forms', () => {
    expect(parseContentRange('bytes 0-9/10')).toEqual({ start: 0, end: 9, total: 10 });
    expect(parseContentRange('bytes */10')).toEqual({ start: null, end: null, total: 10 });
    expect(parseContentRange('bytes 0-9/*')).toEqual({ start: 0, end: 9, total: null });
    expect(parseContentRange('items 0-9/10')).toBeNull();
  });
});

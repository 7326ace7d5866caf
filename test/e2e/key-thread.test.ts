import { cp } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { jsonl, originAndWorkspace, runCli } from '../helpers/cli.js';
import { samplePdf } from '../helpers/origin.js';

const INLINE = { DOCSTOKG_KEY_THREAD_MIN_BYTES: String(2 ** 50) };
const THREAD = { DOCSTOKG_KEY_THREAD_MIN_BYTES: '0' };

/** A record without what differs between two runs of the same work (timings). */
function stable(r: Record<string, unknown>): Record<string, unknown> {
  const { elapsed_ms: _e, ...rest } = r;
  return rest;
}

describe('a re-run with the manifest keyed on a second thread', () => {
  const env = originAndWorkspace();

  it('prints the same records as one that parses every line itself, and fetches only what is new', async () => {
    const { origin, ws } = env;
    for (let i = 0; i < 60; i += 1) origin.set(`/p/${i}.pdf`, { body: samplePdf(`key-${i}`, 900 + i) });
    const url = (i: number): string => origin.url(`/p/${i}.pdf`);
    const first = await ws.file('first.jsonl', jsonl(Array.from({ length: 40 }, (_, i) => ({ id: `doc-${i}`, url: url(i) }))));
    const done = await runCli(['download', first, '-o', ws.out, '--json', '--no-progress'], { env: INLINE });
    expect(done.code).toBe(0);
    // Done items, repeated lines, new items, comments, blanks and invalid lines, over two manifests.
    const a = await ws.file('a.jsonl', jsonl([
      ...Array.from({ length: 50 }, (_, i) => ({ id: `doc-${i}`, url: url(i) })),
      '# comment',
      '',
      '{"url": 5}',
      { id: 'doc-3', url: url(3) },
      url(55),
    ]));
    const b = await ws.file('b.txt', `${url(7)}\n${url(56)}\nnot a url\n${url(56)}\n`);
    await cp(ws.out, join(ws.dir, 'copy'), { recursive: true });
    const inline = await runCli(['download', a, b, '-o', join(ws.dir, 'copy'), '--json', '--no-progress'], { env: INLINE });
    const before = origin.requests.length;
    const threaded = await runCli(['download', a, b, '-o', ws.out, '--json', '--no-progress'], { env: THREAD });
    expect(threaded.code).toBe(inline.code);
    const bySource = (rs: Record<string, unknown>[]) => new Map(rs.map((r) => [r.source, stable(r)]));
    expect(bySource(threaded.records)).toEqual(bySource(inline.records));
    const statuses = threaded.records.map((r) => r.status).sort();
    expect(statuses.filter((s) => s === 'skipped')).toHaveLength(40);
    expect(statuses.filter((s) => s === 'downloaded')).toHaveLength(12);
    // The bare URL of item 7 is an item of its own (its id is the URL): the same bytes, deduplicated.
    expect(statuses.filter((s) => s === 'deduped')).toHaveLength(1);
    expect(threaded.stderr).toContain('2 duplicate lines');
    // Only the 13 new items were asked for.
    expect(origin.requests.length - before).toBe(13);
  });
});

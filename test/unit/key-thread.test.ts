import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import type { Item } from '../../src/manifest/parse.js';

// The key thread runs the built worker (dist/manifest/key-worker.js; `npm test` builds first), so
// the built module is what is tested here, with the size threshold at 0.
process.env.DOCSTOKG_KEY_THREAD_MIN_BYTES = '0';
const built = '../../dist/manifest/items.js';
const { eachItem } = (await import(built)) as typeof import('../../src/manifest/items.js');

const dir = mkdtempSync(join(tmpdir(), 'dtk-keys-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Everything eachItem reports, in order: items visited, invalid lines, lines answered by key. */
async function walk(files: string[], opts: { byKey?: (key: string, source: string) => boolean; stopAt?: number } = {}): Promise<string[]> {
  const seen: string[] = [];
  const reporter = { planned: () => {}, record: (r: { source: string | null; message?: string }) => void seen.push(`invalid ${r.source} ${r.message}`) };
  const visit = (it: Item): void | false => {
    seen.push(`item ${it.source} ${it.key} ${it.id} ${it.candidates.map((c) => c.href).join(' ')}`);
    if (opts.stopAt !== undefined && seen.length >= opts.stopAt) return false;
  };
  const shortcut = opts.byKey
    ? (key: string, source: string) => {
        if (!opts.byKey!(key, source)) return null;
        seen.push(`key ${source} ${key}`);
        return opts.stopAt !== undefined && seen.length >= opts.stopAt ? false : undefined;
      }
    : undefined;
  await eachItem(files, reporter, visit, shortcut);
  return seen;
}

describe('the key thread', () => {
  const lines = Array.from({ length: 6000 }, (_, i) => {
    if (i % 997 === 3) return '{"url": 5}';
    if (i % 701 === 5) return '# a comment';
    if (i % 503 === 9) return '';
    if (i % 401 === 2) return `{"id": "https://openalex.org/W${i}", "best_oa_location": {"pdf_url": "https://oa.org/${i}.pdf"}}`;
    // Bare URLs that are not in canonical form as written (the thread's shortcut must decline them).
    if (i % 307 === 7) return `HTTPS://E.org:443/a/../${i % 4500}.pdf#f`;
    if (i % 211 === 8) return ` https://e.org/${i % 4500}.pdf\t`;
    return `https://e.org/${'x'.repeat(i % 90)}/${i % 4500}.pdf`;
  });
  const a = join(dir, 'a.txt');
  const b = join(dir, 'b.jsonl.gz');
  writeFileSync(a, `\uFEFF${lines.join('\r\n')}\r\n`);
  writeFileSync(b, Buffer.concat([gzipSync(`${lines.slice(0, 50).join('\n')}\nhttps://e.org/only-in-b.pdf\n`)]));
  const bad = join(dir, 'bad.txt');
  writeFileSync(bad, Buffer.concat([Buffer.from('https://e.org/ok.pdf\n'), Buffer.from([0xff, 0xfe, 0x0a]), Buffer.from(`https://e.org/${'y'.repeat(9 * 1024 * 1024)}\n`), Buffer.from('https://e.org/after.pdf\n')]));

  it('sends every item line to the shortcut with the key and source parsing would give, and parses only the lines it declines', async () => {
    const inline = await walk([a, b, bad]);
    const declineAll = await walk([a, b, bad], { byKey: () => false });
    expect(declineAll).toEqual(inline);
    // Every third item answered by key: those lines report the key parsing would have given.
    let n = 0;
    const some = await walk([a, b, bad], { byKey: () => n++ % 3 === 0 });
    expect(some).toHaveLength(inline.length);
    some.forEach((entry, i) => {
      if (!entry.startsWith('key ')) return expect(entry).toBe(inline[i]);
      const [, source, key] = entry.split(' ');
      expect(inline[i]!.startsWith(`item ${source} ${key} `)).toBe(true);
    });
    expect(some.filter((e) => e.startsWith('key ')).length).toBeGreaterThan(1000);
    expect(inline.filter((e) => e.startsWith('invalid ')).map((e) => e.split(' ').slice(0, 2).join(' '))).toEqual([
      ...lines.flatMap((l, i) => (l === '{"url": 5}' ? [`invalid ${a}:${i + 1}`] : [])),
      ...lines.slice(0, 50).flatMap((l, i) => (l === '{"url": 5}' ? [`invalid ${b}:${i + 1}`] : [])),
      `invalid ${bad}:2`,
      `invalid ${bad}:3`,
    ]);
  });

  it('stops when the shortcut or the visitor says so', async () => {
    expect(await walk([a], { byKey: () => true, stopAt: 25 })).toHaveLength(25);
    expect(await walk([a], { byKey: () => false, stopAt: 25 })).toHaveLength(25);
  });

  it('leaves what is not a regular file to this thread, which reports it as a usage error', async () => {
    await expect(walk([dir], { byKey: () => false })).rejects.toMatchObject({ code: 'usage' });
  });
});

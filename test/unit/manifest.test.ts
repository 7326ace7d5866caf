import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { eachItem } from '../../src/manifest/items.js';
import { canonicalizeUrl } from '../../src/manifest/canonical-url.js';
import { jobKey, parseLine, type Item } from '../../src/manifest/parse.js';

const line = (text: string) => ({ file: 'm.jsonl', line: 7, text });
const item = (text: string): Item => {
  const p = parseLine(line(text));
  if (p.kind !== 'item') throw new Error(`expected an item, got ${JSON.stringify(p)}`);
  return p.item;
};

describe('canonicalizeUrl', () => {
  it.each([
    ['HTTP://Example.ORG:80/a/./b/../c.pdf#frag', 'http://example.org/a/c.pdf'],
    ['https://example.org:443', 'https://example.org/'],
    ['https://bücher.example/x', 'https://xn--bcher-kva.example/x'],
    ['https://e.org/%7euser/%2fa%2e%2E/x', 'https://e.org/~user/%2Fa../x'],
    ['https://e.org/a/%2E%2E/b', 'https://e.org/b'],
    ['https://e.org/p?B=2&a=1#x', 'https://e.org/p?B=2&a=1'],
    ['http://e.org:8080/p', 'http://e.org:8080/p'],
    ['https://e.org/p?q#', 'https://e.org/p?q'],
    ['https://e.org/%', 'https://e.org/%25'],
  ])('%s -> %s', (input, expected) => {
    const c = canonicalizeUrl(input);
    expect(c.ok && c.url).toBe(expected);
    expect(canonicalizeUrl(expected)).toMatchObject({ ok: true, url: expected });
  });

  it('refuses other schemes and garbage', () => {
    expect(canonicalizeUrl('ftp://e.org/x')).toMatchObject({ ok: false, why: 'scheme' });
    expect(canonicalizeUrl('javascript:alert(1)')).toMatchObject({ ok: false, why: 'scheme' });
    expect(canonicalizeUrl('http://')).toMatchObject({ ok: false, why: 'unparseable' });
  });
});

describe('parseLine', () => {
  it('skips blank lines and comments', () => {
    expect(parseLine(line('   '))).toEqual({ kind: 'empty' });
    expect(parseLine(line('# note'))).toEqual({ kind: 'empty' });
  });

  it('reads url, urls, id, doi and sha256', () => {
    const it = item(JSON.stringify({ url: 'https://A.org/1.pdf', urls: ['https://a.org/1.pdf#x', 'https://b.org/2.pdf'], doi: 'https://doi.org/10.1/ABC', sha256: 'AB'.repeat(32) }));
    expect(it.id).toBe('10.1/abc');
    expect(it.candidates.map((c) => c.canonical)).toEqual(['https://a.org/1.pdf', 'https://b.org/2.pdf']);
    expect(it.expectedSha256).toBe('ab'.repeat(32));
    expect(it.source).toBe('m.jsonl:7');
  });

  it('uses the id, else the DOI, else the canonical URL', () => {
    expect(item('{"id": 12, "url": "https://a.org/x"}').id).toBe('12');
    expect(item('https://A.org/x#y').id).toBe('https://a.org/x');
  });

  it('takes OpenAlex candidate URLs in order without duplicates, skipping nulls', () => {
    const work = {
      id: 'https://openalex.org/W123',
      doi: 'https://doi.org/10.5/X',
      best_oa_location: { pdf_url: 'https://best.org/p.pdf' },
      primary_location: { pdf_url: null },
      locations: [{ pdf_url: 'https://loc.org/1.pdf' }, { pdf_url: 'https://best.org/p.pdf' }, { landing_page_url: 'x' }],
      open_access: { oa_url: 'https://oa.org/o' },
    };
    const it = item(JSON.stringify(work));
    expect(it.id).toBe('W123');
    expect(it.doi).toBe('10.5/x');
    expect(it.candidates.map((c) => c.href)).toEqual(['https://best.org/p.pdf', 'https://loc.org/1.pdf', 'https://oa.org/o']);
  });

  it('keeps blocked schemes apart from fetchable candidates', () => {
    const it = item('{"urls": ["file:///etc/passwd", "https://a.org/x.pdf"]}');
    expect(it.candidates).toHaveLength(1);
    expect(it.blocked).toEqual(['file:///etc/passwd']);
  });

  it.each([
    ['{"url": 42}', /url must be a non-empty string/],
    ['{"url": ""}', /url must be a non-empty string/],
    ['{"urls": "https://a.org"}', /urls must be an array/],
    ['{"urls": []}', /urls is empty/],
    ['{"url": "https://a.org", "sha256": "xyz"}', /sha256/],
    ['{"url": "https://a.org", "id": {"a": 1}}', /id must be/],
    ['{"title": "no url"}', /no url, urls, doi, arxiv or pmcid/],
    ['{"url": "https://a.org"', /invalid JSON/],
    ['[1, 2]', /not JSON and not a URL|expected a JSON object/],
    ['just words', /single URL/],
    ['{"url": "http://"}', /not a valid URL/],
  ])('%s is invalid', (text, message) => {
    const p = parseLine(line(text));
    expect(p.kind).toBe('invalid');
    expect(p.kind === 'invalid' && p.message).toMatch(message);
  });

  it('gives equal job keys to equal items and different ones otherwise', () => {
    expect(item('https://a.org/x').key).toBe(item('{"url": "HTTPS://A.ORG/x#f"}').key);
    expect(item('{"id": "a", "url": "https://a.org/x"}').key).not.toBe(item('{"id": "b", "url": "https://a.org/x"}').key);
    expect(jobKey('a', ['u'])).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('eachItem', () => {
  it('visits every item in order across chunks, reports invalid lines in their place, waits only on promises, and stops on false', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dtk-items-'));
    const file = join(dir, 'm.txt');
    // ~200 KB: several 64 KiB chunks, with lines cut across chunk boundaries
    const lines = Array.from({ length: 3000 }, (_, i) => (i % 500 === 7 ? '{"url": 5}' : `https://e.org/${'x'.repeat(i % 90)}/${i}.pdf`));
    writeFileSync(file, `${lines.join('\n')}\n`);
    const seen: string[] = [];
    const reporter = { planned: () => {}, record: (r: { source: string | null }) => void seen.push(`invalid ${r.source}`) };
    let waited = 0;
    await eachItem([file], reporter, (it) => {
      seen.push(it.source);
      if (it.source.endsWith(':100')) return new Promise<void>((resolve) => setTimeout(() => (waited += 1, resolve()), 5));
    });
    expect(seen).toEqual(lines.map((l, i) => (l.startsWith('{') ? `invalid ${file}:${i + 1}` : `${file}:${i + 1}`)));
    expect(waited).toBe(1);
    const upTo: string[] = [];
    await eachItem([file], reporter, (it) => (upTo.push(it.source), upTo.length < 10 ? undefined : false));
    expect(upTo).toHaveLength(10);
    rmSync(dir, { recursive: true, force: true });
  });
});

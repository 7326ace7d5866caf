import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseLine } from '../../src/manifest/parse.js';
import { loadResolvers, resolverConfig } from '../../src/resolve/config.js';
import { bareIdentifier } from '../../src/resolve/ids.js';
import { pdfLinks } from '../../src/resolve/landing.js';
import { RESOLVERS } from '../../src/resolve/resolvers.js';
import { ShapeError } from '../../src/resolve/types.js';

describe('identifiers', () => {
  it.each([
    ['10.1234/ABC.def', { doi: '10.1234/abc.def' }, '10.1234/abc.def'],
    ['doi:10.1234/x', { doi: '10.1234/x' }, '10.1234/x'],
    ['https://doi.org/10.1234/x', { doi: '10.1234/x' }, '10.1234/x'],
    ['https://dx.doi.org/10.1234/x', { doi: '10.1234/x' }, '10.1234/x'],
    ['w42', { openalex: 'W42' }, 'W42'],
    ['https://openalex.org/W42', { openalex: 'W42' }, 'W42'],
    ['arXiv:2101.00001', { arxiv: '2101.00001' }, 'arXiv:2101.00001'],
    ['2101.00001v2', { arxiv: '2101.00001v2' }, 'arXiv:2101.00001v2'],
    ['arXiv:hep-th/9901001', { arxiv: 'hep-th/9901001' }, 'arXiv:hep-th/9901001'],
    ['PMC123456', { pmcid: 'PMC123456' }, 'PMC123456'],
    ['10.48550/arXiv.2101.00001', { doi: '10.48550/arxiv.2101.00001', arxiv: '2101.00001' }, '10.48550/arxiv.2101.00001'],
  ])('%s', (text, ids, id) => {
    const got = bareIdentifier(text);
    expect(got).toMatchObject({ ids, id });
    const line = parseLine({ file: 'm', line: 1, text });
    expect(line).toMatchObject({ kind: 'item', item: { id, ids, candidates: [] } });
  });

  it('leaves URLs and junk alone', () => {
    expect(bareIdentifier('https://example.org/x.pdf')).toBeNull();
    expect(bareIdentifier('10.12/x')).toBeNull();
    expect(parseLine({ file: 'm', line: 1, text: 'hello' })).toMatchObject({ kind: 'invalid' });
  });

  it('reads identifiers beside URLs in JSON, and keeps the URLs first', () => {
    const p = parseLine({ file: 'm', line: 1, text: '{"url": "https://a.org/x.pdf", "doi": "10.1000/x", "pmcid": "pmc9"}' });
    expect(p).toMatchObject({ kind: 'item', item: { id: '10.1000/x', ids: { doi: '10.1000/x', pmcid: 'PMC9' }, candidates: [{ href: 'https://a.org/x.pdf' }] } });
  });

  it("does not ask OpenAlex again for a line that is OpenAlex's own work", () => {
    const p = parseLine({ file: 'm', line: 1, text: '{"id": "https://openalex.org/W5", "doi": "https://doi.org/10.5555/x", "ids": {"pmcid": "https://www.ncbi.nlm.nih.gov/pmc/articles/77"}}' });
    expect(p).toMatchObject({ kind: 'item', item: { id: 'W5', ids: { openalex: null, doi: '10.5555/x', pmcid: 'PMC77' } } });
  });
});

describe('landing pages', () => {
  it('finds citation_pdf_url first, then PDF alternates, resolved against <base>, each once', () => {
    const html = `<html><head><base href="https://pub.example/articles/">
      <link rel="alternate" type="application/pdf" href="7.pdf">
      <META NAME="citation_pdf_url" CONTENT="https://pub.example/a/7.pdf?download=1&amp;x=2">
      <meta name="citation_pdf_url" content="7.pdf">
      <link rel="alternate" type="text/html" href="other.html">
      <meta name="citation_pdf_url" content="javascript:alert(1)"></head></html>`;
    expect(pdfLinks(html, 'https://pub.example/doi/7')).toEqual(['https://pub.example/a/7.pdf?download=1&x=2', 'https://pub.example/articles/7.pdf']);
  });
});

describe('resolver answers', () => {
  it('reads the documented shapes, in order, without duplicates', () => {
    expect(RESOLVERS.openalex.leadsFrom({ best_oa_location: { pdf_url: 'https://a/1.pdf' }, primary_location: { pdf_url: 'https://a/1.pdf', landing_page_url: 'https://a/1' }, locations: [{ pdf_url: null }], open_access: { oa_url: 'https://b/2.pdf' } })).toEqual([
      { url: 'https://a/1.pdf', landing: false },
      { url: 'https://b/2.pdf', landing: false },
      { url: 'https://a/1', landing: true },
    ]);
    expect(RESOLVERS.crossref.leadsFrom({ message: { link: [{ URL: 'https://c/x.xml', 'content-type': 'text/xml' }, { URL: 'https://c/x.pdf', 'content-type': 'application/pdf' }], URL: 'https://doi.org/10.1/x' } })).toEqual([
      { url: 'https://c/x.pdf', landing: false },
      { url: 'https://doi.org/10.1/x', landing: true },
    ]);
    expect(RESOLVERS.europepmc.leadsFrom({ resultList: { result: [{ fullTextUrlList: { fullTextUrl: [{ url: 'https://e/s.pdf', documentStyle: 'pdf', availabilityCode: 'S' }, { url: 'https://e/oa.pdf', documentStyle: 'pdf', availabilityCode: 'OA' }] } }] } }).map((l) => l.url)).toEqual(['https://e/oa.pdf', 'https://e/s.pdf']);
  });

  it('refuses another shape with the path of the first problem', () => {
    expect(() => RESOLVERS.openalex.leadsFrom({ locations: 'x' })).toThrow(ShapeError);
    expect(() => RESOLVERS.crossref.leadsFrom([])).toThrow(/message|expected object/);
    expect(() => RESOLVERS.unpaywall.leadsFrom({ best_oa_location: { url_for_pdf: 5 } })).toThrow(/best_oa_location\.url_for_pdf/);
  });

  it('asks Unpaywall only with an address, and arXiv without asking', () => {
    const ids = { doi: '10.1/x', openalex: null, arxiv: '2101.00001', pmcid: null };
    expect(RESOLVERS.unpaywall.step(ids, 'https://u', null)).toBeNull();
    expect(RESOLVERS.unpaywall.step(ids, 'https://u', 'me@x.org')).toEqual({ request: 'https://u/10.1%2Fx?email=me%40x.org' });
    expect(RESOLVERS.arxiv.step(ids, 'https://arxiv.org', null)).toEqual({ leads: [{ url: 'https://arxiv.org/pdf/2101.00001', landing: false }] });
  });
});

describe('resolvers.yaml', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'docstokg-resolvers-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('has built-in defaults, and a file keeps the base URLs it leaves out', async () => {
    expect(resolverConfig(undefined).order).toEqual(['openalex', 'unpaywall', 'crossref', 'arxiv', 'europepmc']);
    const f = join(dir, 'r.yaml');
    await writeFile(f, 'version: 1\norder: [crossref]\nlanding: false\ncrossref: {base_url: "http://127.0.0.1:9/cr/"}\n');
    expect(resolverConfig(f)).toMatchObject({ order: ['crossref'], landing: false, baseUrls: { crossref: 'http://127.0.0.1:9/cr', openalex: 'https://api.openalex.org' } });
  });

  it.each([
    ['version: 1\norder: [scihub]\n', /order\[0\]: unknown resolver "scihub"/],
    ['version: 1\norder: [arxiv, arxiv]\n', /listed twice/],
    ['version: 1\nopenalex: {base_url: "ftp://x"}\n', /openalex\.base_url: must be an http\(s\) URL/],
    ['version: 1\nlanding: "yes"\n', /landing: expected true or false/],
    ['version: 2\n', /version: expected 1/],
    ['version: 1\ncrossref: {url: "https://x"}\n', /crossref\.url: unknown key/],
  ])('%s is a usage error naming the key', async (text, message) => {
    const f = join(dir, 'bad.yaml');
    await writeFile(f, text);
    expect(() => loadResolvers(f, resolverConfig(undefined))).toThrow(message);
  });
});

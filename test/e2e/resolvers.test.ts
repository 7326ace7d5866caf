import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { byId, originAndWorkspace, runCli } from '../helpers/cli.js';
import { queryLedger } from '../helpers/ledger.js';
import { resolversYaml, serveScholarly } from '../fixtures/scholarly.js';
import { samplePdf, startOrigin } from '../helpers/origin.js';
import { maxInWindow } from '../helpers/windows.js';

const API = /^\/(openalex|unpaywall|crossref|europepmc)\//;

describe('resolvers: identifiers to PDFs', () => {
  const env = originAndWorkspace(() => startOrigin());

  it('places every resolvable work, reads landing pages, honours robots.txt, and asks each API once across two runs', async () => {
    const works = serveScholarly(env.origin);
    const manifest = await env.ws.file('works.txt', `${works.map((w) => w.line).join('\n')}\n`);
    const resolvers = await env.ws.file('resolvers.yaml', resolversYaml(env.origin));
    const args = ['download', manifest, '-o', env.ws.out, '--resolvers', resolvers, '--mailto', 'team@example.org', '--json', '-q'];
    const first = await runCli(args);
    expect(first.code).toBe(1);
    const recs = byId(first.records);
    expect(first.records).toHaveLength(works.length);
    for (const rec of first.records) {
      const work = works.find((w) => String(rec.source).endsWith(`:${works.indexOf(w) + 1}`))!;
      if (work.pdf) {
        expect(rec, work.line).toMatchObject({ status: 'downloaded' });
        expect((await readFile(join(env.ws.out, rec.path as string))).equals(work.pdf)).toBe(true);
      } else {
        expect(rec, work.line).toMatchObject({ status: 'failed', reason: 'no_url' });
      }
    }
    expect(recs.get('W100')).toMatchObject({ resolver: 'openalex', landing_url: null });
    expect(recs.get('10.1000/two')).toMatchObject({ resolver: 'openalex', landing_url: env.origin.url('/pub/article/2'), url: env.origin.url('/pub/article/2.pdf') });
    expect(recs.get('10.1000/three')).toMatchObject({ resolver: 'unpaywall' });
    expect(recs.get('10.1000/four')).toMatchObject({ resolver: 'crossref' });
    expect(recs.get('arXiv:2101.00001')).toMatchObject({ resolver: 'arxiv' });
    expect(recs.get('PMC777')).toMatchObject({ resolver: 'europepmc' });
    expect(recs.get('W800')!.message).toMatch(/robots\.txt does not allow/);
    expect(recs.get('10.1000/unknown')!.message).toMatch(/openalex: does not know the work \(http_404\); unpaywall: .*crossref: .*europepmc/);
    // robots.txt: asked once, and the page it disallows never.
    const paths = env.origin.requests.map((r) => r.path);
    expect(paths.filter((p) => p === '/robots.txt')).toHaveLength(1);
    expect(paths).not.toContain('/private/eight');
    // Unpaywall's terms: the address goes with every request.
    for (const r of env.origin.requests.filter((q) => q.path.startsWith('/unpaywall/'))) expect(r.headers['user-agent']).toMatch(/mailto:team@example\.org/);
    const asked = env.origin.requests.filter((r) => API.test(r.path));
    expect(new Set(asked.map((r) => r.target)).size).toBe(asked.length);

    // The second run asks the failed works again: every API answer comes from the ledger's cache.
    const before = env.origin.requests.length;
    const second = await runCli([...args, '--retry-failed']);
    expect(byId(second.records).get('10.1000/unknown')).toMatchObject({ status: 'failed', reason: 'no_url' });
    expect(env.origin.requests.slice(before).map((r) => r.path)).toEqual([]);
    expect(queryLedger<{ n: number }>(env.ws.out, 'SELECT count(*) AS n FROM http_cache')[0]!.n).toBeGreaterThan(10);

    // --dry-run places works from the cache alone, and sends nothing.
    const fresh = await env.ws.file('fresh.txt', '{"id": "two-again", "doi": "10.1000/two"}\n{"id": "never-asked", "doi": "10.1000/never"}\narXiv:2303.00003\n');
    const dryBefore = env.origin.requests.length;
    // The same --mailto: it is part of the requests the cache knows.
    const dry = await runCli(['download', fresh, '-o', env.ws.out, '--resolvers', resolvers, '--mailto', 'team@example.org', '--dry-run', '--json']);
    expect(env.origin.requests.length).toBe(dryBefore);
    expect(byId(dry.records).get('two-again')).toMatchObject({ status: 'planned', resolver: 'openalex', url: env.origin.url('/pub/article/2') });
    expect(byId(dry.records).get('never-asked')).toMatchObject({ status: 'planned', resolver: null, url: null });
    expect(byId(dry.records).get('arXiv:2303.00003')).toMatchObject({ status: 'planned', resolver: 'arxiv', url: env.origin.url('/arxiv/pdf/2303.00003') });

    const status = await runCli(['status', '-o', env.ws.out, '--json']);
    expect(JSON.parse(status.stdout).resolvers).toEqual({ openalex: 2, unpaywall: 1, crossref: 1, arxiv: 2, europepmc: 1 });
  });

  it('a hostile API answer fails that resolver with a stable code, and the next one is tried', async () => {
    const { origin, ws } = env;
    const pdf = samplePdf('after hostile answers', 20_000);
    origin.set('/good/fallback.pdf', { body: pdf });
    const json = (body: string) => ({ body: Buffer.from(body), headers: { 'content-type': 'application/json' } });
    const cases: [string, string][] = [
      ['10.2000/badjson', 'bad_json'],
      ['10.2000/huge', 'too_large'],
      ['10.2000/types', 'bad_shape'],
      ['10.2000/loop', 'too_many_redirects'],
      ['10.2000/fails', 'http_500'],
    ];
    const doi = (d: string) => `/openalex/works/doi:${encodeURIComponent(d)}`;
    origin.set(doi('10.2000/badjson'), json('{"best_oa_location": {'));
    origin.set(doi('10.2000/huge'), { ...json(''), body: Buffer.alloc(5 * 1024 * 1024, 0x20), chunked: true });
    origin.set(doi('10.2000/types'), json('{"best_oa_location": "https://example.org/x.pdf", "locations": 7}'));
    origin.set(doi('10.2000/loop'), { body: Buffer.alloc(0), redirect: doi('10.2000/loop') });
    origin.set(doi('10.2000/fails'), { ...json('{}'), status: 500 });
    for (const [d] of cases) {
      origin.set(`/crossref/works/${encodeURIComponent(d)}`, json(JSON.stringify({ message: { link: [{ URL: origin.url('/good/fallback.pdf'), 'content-type': 'application/pdf' }] } })));
    }
    const manifest = await ws.file('hostile.txt', `${cases.map(([d]) => d).join('\n')}\n`);
    const resolvers = await ws.file('resolvers.yaml', resolversYaml(origin));
    const run = await runCli(['download', manifest, '-o', join(ws.dir, 'hostile-out'), '--resolvers', resolvers, '--json', '-q', '--log-format', 'json']);
    expect(run.code, run.stderr.split('\n').filter((l) => !l.startsWith('{')).join('\n')).toBe(0);
    const events = run.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    for (const [d, code] of cases) {
      expect(byId(run.records).get(d), d).toMatchObject({ status: expect.stringMatching(/downloaded|deduped/), resolver: 'crossref' });
      expect(events.find((e) => e.event === 'resolve' && e.id === d && e.resolver === 'openalex'), d).toMatchObject({ error: code });
    }
  });

  it('a work no resolver places is a permanent no_url, unless an API could not be asked', async () => {
    const { origin, ws } = env;
    origin.set(`/openalex/works/doi:${encodeURIComponent('10.3000/down')}`, { body: Buffer.from('busy'), status: 503, headers: { 'content-type': 'text/plain' } });
    const manifest = await ws.file('later.txt', '10.3000/down\n10.3000/nobody\n');
    const resolvers = await ws.file('resolvers.yaml', resolversYaml(origin));
    const out = join(ws.dir, 'later-out');
    const run = await runCli(['download', manifest, '-o', out, '--resolvers', resolvers, '--json', '-q', '--retries', '0']);
    expect(run.code).toBe(1);
    expect(byId(run.records).get('10.3000/down')).toMatchObject({ reason: 'no_url', message: expect.stringMatching(/openalex: answered HTTP 503 \(http_503\)/) });
    const rows = new Map(queryLedger<{ item_id: string; next_attempt_at: number | null }>(out, 'SELECT item_id, next_attempt_at FROM jobs').map((r) => [r.item_id, r.next_attempt_at]));
    expect(rows.get('10.3000/down')).toEqual(expect.any(Number));
    expect(rows.get('10.3000/nobody')).toBeNull();
  });

  it('metadata requests keep their role\'s rate, apart from the PDF host\'s', async () => {
    const { origin, ws } = env;
    const lines: string[] = [];
    for (let i = 0; i < 10; i += 1) {
      origin.set(`/openalex/works/W9${i}`, { body: Buffer.from(JSON.stringify({ best_oa_location: { pdf_url: origin.url(`/rated/${i}.pdf`) } })), headers: { 'content-type': 'application/json' } });
      origin.set(`/rated/${i}.pdf`, { body: samplePdf(`rated ${i}`, 5000) });
      lines.push(`W9${i}`);
    }
    const manifest = await ws.file('rated.txt', `${lines.join('\n')}\n`);
    const resolvers = await ws.file('resolvers.yaml', resolversYaml(origin));
    const rates = await ws.file('rates.yaml', 'version: 1\nhosts:\n  127.0.0.1:\n    metadata: {rates: ["4/SECOND"], max_delay_ms: 5000}\n    artifact: {rates: [], max_concurrent: 16}\n    landing: {rates: []}\n');
    const start = origin.requests.length;
    const run = await runCli(['download', manifest, '-o', join(ws.dir, 'rated-out'), '--resolvers', resolvers, '--ratelimits', rates, '--json', '-q']);
    expect(run.code).toBe(0);
    const reqs = origin.requests.slice(start);
    // 4/s: at most four in any second, less the arrival jitter of a loaded machine.
    const api = reqs.filter((r) => r.path.startsWith('/openalex/')).map((r) => r.at);
    expect(api).toHaveLength(10);
    expect(maxInWindow(api, 950), api.map((t) => t - api[0]!).join(' ')).toBeLessThanOrEqual(4);
    expect(reqs.filter((r) => r.path.startsWith('/rated/'))).toHaveLength(10);
  });
});

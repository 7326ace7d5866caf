import { describe, expect, it } from 'vitest';
import { jsonl, originAndWorkspace, runCli } from '../helpers/cli.js';
import { samplePdf, startOrigin } from '../helpers/origin.js';

const pdf = samplePdf('url-policy', 4096);

describe('URL policy: --deny-private, --allow-host, --deny-host', () => {
  const env = originAndWorkspace(() => startOrigin({ '/ok.pdf': { body: pdf } }));

  async function run(items: unknown[], ...flags: string[]) {
    const m = await env.ws.file(`m-${Math.random().toString(36).slice(2)}.jsonl`, jsonl(items));
    const res = await runCli(['download', m, '-o', env.ws.out, '--json', '--no-progress', '--retries', '0', ...flags]);
    expect(res.stderr).not.toMatch(/\n\s+at |internal error/);
    return res;
  }

  it('--deny-private refuses loopback, private, link-local (cloud metadata) and unique-local literals without a request', async () => {
    const { origin } = env;
    const before = origin.requests.length;
    const urls = [origin.url('/ok.pdf'), 'http://169.254.169.254/latest/meta-data/', 'http://10.1.2.3/x.pdf', 'http://192.168.0.1/x.pdf', 'http://[fd00::1]/x.pdf', 'http://[::ffff:127.0.0.1]:1/x.pdf', 'http://0x7f.1/x.pdf', 'http://2130706433/x.pdf'];
    const res = await run(urls.map((url, i) => ({ id: `p${i}`, url })), '--deny-private');
    expect(res.code).toBe(1);
    expect(res.records).toHaveLength(urls.length);
    for (const r of res.records) {
      expect(r).toMatchObject({ status: 'failed', reason: 'blocked' });
      expect(r.message).toMatch(/refused by --deny-private/);
    }
    expect(origin.requests.length).toBe(before);
  });

  it('--deny-private checks the address a name resolves to (localhost), at connect time', async () => {
    const { origin } = env;
    const before = origin.requests.length;
    const res = await run([{ id: 'name', url: origin.url('/ok.pdf', 'localhost') }], '--deny-private');
    expect(res.records[0]).toMatchObject({ status: 'failed', reason: 'blocked' });
    expect(res.records[0]!.message).toMatch(/localhost resolves only to non-public addresses/);
    expect(origin.requests.length).toBe(before);
    // Without the flag the same URL works: the refusal came from the policy. `blocked` is a
    // permanent failure (SPEC §8): a later run with other flags asks again with --retry-failed.
    const known = (await run([{ id: 'name', url: origin.url('/ok.pdf', 'localhost') }])).records[0];
    expect(known).toMatchObject({ status: 'failed', reason: 'blocked', attempted: false });
    expect((await run([{ id: 'name', url: origin.url('/ok.pdf', 'localhost') }], '--retry-failed')).records[0]).toMatchObject({ status: 'downloaded' });
  });

  it('--deny-host and --allow-host apply to the first URL and to every redirect hop', async () => {
    const { origin } = env;
    const other = await startOrigin({ '/there.pdf': { body: samplePdf('there', 3000) } }, '127.0.0.2');
    try {
      origin.set('/away', { body: pdf, redirect: other.url('/there.pdf') });
      const denied = await run([{ id: 'd', url: origin.url('/away') }], '--deny-host', '127.0.0.2');
      expect(denied.records[0]).toMatchObject({ status: 'failed', reason: 'blocked', final_url: other.url('/there.pdf') });
      expect(denied.records[0]!.message).toMatch(/127\.0\.0\.2 is refused by --deny-host/);
      const notAllowed = await run([{ id: 'a', url: origin.url('/away') }], '--allow-host', '127.0.0.1');
      expect(notAllowed.records[0]).toMatchObject({ status: 'failed', reason: 'blocked' });
      expect(notAllowed.records[0]!.message).toMatch(/not in --allow-host/);
      expect(other.requests).toHaveLength(0);
      const allowed = await run([{ id: 'a', url: origin.url('/away') }], '--allow-host', '127.0.0.1', '--allow-host', '127.0.0.2', '--retry-failed');
      expect(allowed.records[0]).toMatchObject({ status: 'downloaded' });
      // From the environment, comma-separated, as cron jobs set it.
      const fromEnv = await runCli(['download', await env.ws.file('e.jsonl', jsonl([{ id: 'e', url: origin.url('/away') }])), '-o', env.ws.out, '--json', '--retries', '0'], { env: { DOCSTOKG_DENY_HOST: 'example.org, 127.0.0.2' } });
      expect(fromEnv.records[0]).toMatchObject({ status: 'failed', reason: 'blocked' });
    } finally {
      await other.close();
    }
  });

  it('--dry-run applies the same policy to the URLs as written', async () => {
    const items = [
      { id: 'denied', url: 'https://bad.example.org/x.pdf' },
      { id: 'fallback', urls: ['https://bad.example.org/x.pdf', 'https://good.example.org/y.pdf'] },
      { id: 'metadata', url: 'http://169.254.169.254/latest/meta-data/' },
    ];
    const res = await run(items, '--dry-run', '--deny-host', '*.bad.example.org', '--deny-host', 'bad.example.org', '--deny-private');
    const ids = new Map(res.records.map((r) => [r.id, r]));
    expect(ids.get('denied')).toMatchObject({ status: 'failed', reason: 'blocked' });
    expect(ids.get('fallback')).toMatchObject({ status: 'planned', url: 'https://good.example.org/y.pdf' });
    expect(ids.get('metadata')).toMatchObject({ status: 'failed', reason: 'blocked' });
  });

  it('a bad host pattern is a usage error naming the flag (exit 2)', async () => {
    const res = await run([{ url: env.origin.url('/ok.pdf') }], '--allow-host', 'exa mple.org');
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/--allow-host: not a host name: "exa mple.org"/);
  });
});

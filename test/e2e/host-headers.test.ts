import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { jsonl, originAndWorkspace, runCli } from '../helpers/cli.js';
import { samplePdf, sha256Hex, startOrigin } from '../helpers/origin.js';

const SECRET = 's3cr3t-tdm-token-0123456789';
const pdf = samplePdf('behind-api-key', 4096);

async function everythingWritten(dir: string): Promise<string> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) out.push(await readFile(join(entry.parentPath, entry.name), 'latin1'));
  }
  return out.join('');
}

describe('per-host secret headers (--host-headers)', () => {
  const env = originAndWorkspace(() =>
    startOrigin({ '/tdm.pdf': (_n, req) => (req.headers['x-api-key'] === SECRET ? { body: pdf } : { body: Buffer.from('forbidden'), status: 403 }) }),
  );

  it('sends the key to its host only, never after a redirect elsewhere, and never writes it down', async () => {
    const { origin, ws } = env;
    const other = await startOrigin({ '/mirror.pdf': { body: samplePdf('mirror', 3000) } }, '127.0.0.2');
    try {
      origin.set('/to-mirror', { body: pdf, redirect: other.url('/mirror.pdf') });
      const config = await ws.file('headers.yaml', 'version: 1\nhosts:\n  127.0.0.1:\n    X-Api-Key: ${TDM_TOKEN}\n');
      const m = await ws.file('tdm.jsonl', jsonl([{ id: 'tdm', url: origin.url('/tdm.pdf') }, { id: 'hop', url: origin.url('/to-mirror') }]));
      const metrics = join(ws.dir, 'metrics.prom');
      const res = await runCli(['download', m, '-o', ws.out, '--json', '--host-headers', config, '--log-format', 'json', '-v', '--metrics-file', metrics], { env: { TDM_TOKEN: SECRET } });
      expect(res.code).toBe(0);
      const ids = new Map(res.records.map((r) => [r.id, r]));
      expect(ids.get('tdm')).toMatchObject({ status: 'downloaded', sha256: sha256Hex(pdf) });
      expect(ids.get('hop')).toMatchObject({ status: 'downloaded', final_url: other.url('/mirror.pdf') });
      expect(origin.requests.find((r) => r.path === '/to-mirror')!.headers['x-api-key']).toBe(SECRET);
      expect(other.requests[0]!.headers['x-api-key']).toBeUndefined();
      expect(res.stdout + res.stderr).not.toContain(SECRET);
      expect(await everythingWritten(ws.dir)).not.toContain(SECRET.slice(0, 12));
    } finally {
      await other.close();
    }
  });

  it('a missing variable, a reserved or malformed header, bad YAML: exit 2 naming file and key, the value never echoed', async () => {
    const { origin, ws } = env;
    const m = await ws.file('x.jsonl', jsonl([{ url: origin.url('/tdm.pdf') }]));
    const cases: [string, RegExp][] = [
      ['version: 1\nhosts:\n  api.example.org: {X-Key: "${NOT_SET_ANYWHERE}"}\n', /hosts\.api\.example\.org\.X-Key: environment variable NOT_SET_ANYWHERE is not set/],
      ['version: 1\nhosts:\n  api.example.org: {Range: bytes=0-}\n', /hosts\.api\.example\.org\.Range: this header is set by docstokg itself/],
      ['version: 1\nhosts:\n  api.example.org: {"Bad Name": hunter2}\n', /hosts\.api\.example\.org\.Bad Name: not a valid header name/],
      ['version: 1\nhosts:\n  api.example.org: hunter2\n', /hosts\.api\.example\.org: expected a mapping/],
      ['version: 1\nhosts:\n  api.example.org: {X-Key: 12345}\n', /X-Key: expected a string value/],
      ['version: 1\nhots: {}\n', /hots: unknown key/],
      ['version: 1\nhosts: [\n', /line \d+ YAML syntax error/],
    ];
    for (const [yaml, message] of cases) {
      const file = await ws.file('bad-headers.yaml', yaml);
      const res = await runCli(['download', m, '-o', ws.out, '--host-headers', file]);
      expect(res.code, yaml).toBe(2);
      expect(res.stderr).toMatch(message);
      expect(res.stderr).toContain('bad-headers.yaml');
      expect(res.stderr).not.toContain('hunter2');
      expect(res.stderr).not.toContain('12345');
    }
  });
});

import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { byId, jsonl, originAndWorkspace, runCli } from '../helpers/cli.js';
import { samplePdf, sha256Hex, startOrigin } from '../helpers/origin.js';

const pdf = samplePdf('hostile-manifest', 4096);
const secretPdf = samplePdf('behind-basic-auth', 4096);
const BASIC = `Basic ${Buffer.from('user:hunter2').toString('base64')}`;

/** Bytes written to the ledger (main file and WAL), to show what was never stored. */
async function ledgerBytes(out: string): Promise<string> {
  const files = (await readdir(out)).filter((f) => f.startsWith('docstokg.sqlite'));
  return (await Promise.all(files.map((f) => readFile(join(out, f), 'latin1')))).join('');
}

describe('hostile manifests', () => {
  const env = originAndWorkspace(() =>
    startOrigin({
      '/ok.pdf': { body: pdf },
      '/dup.pdf': { body: samplePdf('dup', 2048) },
      '/auth.pdf': (_n, req) => (req.headers.authorization === BASIC ? { body: secretPdf } : { body: Buffer.from('no'), status: 401 }),
    }),
  );

  it('every bad line is an invalid record naming file and line; good lines still run; nothing stored is lost', async () => {
    const { origin, ws } = env;
    const first = await runCli(['download', await ws.file('first.jsonl', jsonl([{ id: 'kept', url: origin.url('/ok.pdf') }])), '-o', ws.out, '--json']);
    expect(first.code).toBe(0);
    const stored = join(ws.out, first.records[0]!.path as string);

    const huge = `{"url": "${origin.url('/')}${'a'.repeat(10 * 1024 * 1024)}"}`;
    const lines: (string | Buffer)[] = [
      '\uFEFF{"id": "bom", "url": "' + origin.url('/ok.pdf') + '"}\r', // BOM and CRLF
      '{"url": ',
      '{"url": 42}',
      '{"url": ""}',
      '{"urls": []}',
      '{"urls": "not-a-list"}',
      '[1, 2, 3]',
      huge,
      Buffer.from([0x00, 0xff, 0x13, 0x37, 0x00, 0x80, 0x1f]),
      Buffer.concat([Buffer.from(`${origin.url('/ok')}`), Buffer.from([0xff, 0xfe]), Buffer.from('.pdf')]),
      'not a url at all',
      '{"id": "file", "url": "file:///etc/passwd"}',
      '{"id": "ftp", "url": "ftp://user:hunter2@example.org/x.pdf"}',
      '{"id": "data", "url": "data:application/pdf;base64,JVBERi0="}',
      '{"id": "js", "url": "javascript:alert(1)"}',
      `{"id": "creds", "url": "${origin.url('/auth.pdf').replace('http://', 'http://user:hunter2@')}"}`,
      `http://user:hunter2@[bad`,
    ];
    const body = Buffer.concat(lines.map((l) => Buffer.concat([Buffer.isBuffer(l) ? l : Buffer.from(l), Buffer.from('\n')])));
    const m = await ws.file('hostile.jsonl', body);
    const res = await runCli(['download', m, '-o', ws.out, '--json', '--no-progress']);
    expect(res.code).toBe(1);
    expect(res.stderr).not.toMatch(/\n\s+at |internal error/);
    const invalid = res.records.filter((r) => r.status === 'invalid');
    const bySource = new Map(invalid.map((r) => [String(r.source).split(':').pop(), r]));
    for (const n of [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 17]) {
      expect(bySource.get(String(n)), `line ${n}`).toMatchObject({ status: 'invalid', reason: 'invalid_line', source: `${m}:${n}` });
    }
    expect(bySource.get('2')!.message).toMatch(/invalid JSON/);
    expect(bySource.get('3')!.message).toMatch(/url must be a non-empty string, got 42/);
    expect(bySource.get('5')!.message).toMatch(/urls is empty/);
    expect(bySource.get('8')!.message).toMatch(/longer than the 8388608-byte limit/);
    expect(bySource.get('9')!.message).toMatch(/not valid UTF-8|NUL/);
    expect(bySource.get('10')!.message).toMatch(/not valid UTF-8/);
    const ids = byId(res.records);
    expect(ids.get('bom')).toMatchObject({ status: 'deduped', source: `${m}:1` });
    for (const id of ['file', 'ftp', 'data', 'js']) expect(ids.get(id)).toMatchObject({ status: 'failed', reason: 'blocked' });
    expect(ids.get('creds')).toMatchObject({ status: 'downloaded', sha256: sha256Hex(secretPdf) });
    // Credentials were used, and appear nowhere: not in records, messages, logs or the ledger.
    expect(res.stdout + res.stderr).not.toContain('hunter2');
    expect(await ledgerBytes(ws.out)).not.toContain('hunter2');
    expect(ids.get('creds')!.url).toBe(origin.url('/auth.pdf'));
    // The earlier object is untouched.
    expect(sha256Hex(await readFile(stored))).toBe(first.records[0]!.sha256);
  });

  it('a URL with credentials sends them to its own origin only, never after a redirect to another host', async () => {
    const { origin, ws } = env;
    const other = await startOrigin({ '/elsewhere.pdf': { body: samplePdf('elsewhere', 3000) } }, '127.0.0.2');
    try {
      origin.set('/hop', { body: pdf, redirect: other.url('/elsewhere.pdf') });
      const m = await ws.file('cred-hop.jsonl', jsonl([{ id: 'hop', url: origin.url('/hop').replace('http://', 'http://user:hunter2@') }]));
      const res = await runCli(['download', m, '-o', ws.out, '--json']);
      expect(res.records[0]).toMatchObject({ status: 'downloaded', final_url: other.url('/elsewhere.pdf') });
      expect(origin.requests.find((r) => r.path === '/hop')!.headers.authorization).toBe(BASIC);
      expect(other.requests[0]!.headers.authorization).toBeUndefined();
    } finally {
      await other.close();
    }
  });

  it('--link-dir names from hostile ids stay inside the directory and never collide', async () => {
    const { origin, ws } = env;
    const ids = ['../../etc/passwd', '/abs/path', 'a\u0000b', 'x'.repeat(1000), 'CON', 'nul.txt', 'a/b', 'a:b', 'a_b', '..', '.', '-rf'];
    const links = join(ws.dir, 'links', 'inner');
    const m = await ws.file('ids.jsonl', jsonl(ids.map((id) => `{"id": ${JSON.stringify(id)}, "url": "${origin.url('/ok.pdf')}"}`)));
    const res = await runCli(['download', m, '-o', ws.out, '--json', '--link-dir', links]);
    expect(res.code).toBe(0);
    expect(res.records).toHaveLength(ids.length);
    const names = await readdir(links);
    expect(names).toHaveLength(ids.length);
    for (const n of names) {
      expect(n).toMatch(/^[A-Za-z0-9_][A-Za-z0-9._-]*\.pdf$/);
      expect(sha256Hex(await readFile(join(links, n)))).toBe(sha256Hex(pdf));
    }
    // Nothing was written next to or above the link directory.
    expect(await readdir(join(ws.dir, 'links'))).toEqual(['inner']);
    expect(existsSync(join(ws.dir, 'etc'))).toBe(false);
  });

  it('runs 100,000 copies of one line once: one request, one record', async () => {
    const { origin, ws } = env;
    const m = await ws.file('dups.jsonl', `${origin.url('/dup.pdf')}\n`.repeat(100_000));
    const before = origin.requests.filter((r) => r.path === '/dup.pdf').length;
    const res = await runCli(['download', m, '-o', ws.out, '--json', '--no-progress']);
    expect(res.code).toBe(0);
    expect(res.records).toHaveLength(1);
    expect(res.records[0]).toMatchObject({ status: 'downloaded' });
    expect(origin.requests.filter((r) => r.path === '/dup.pdf').length - before).toBe(1);
    expect(res.stderr).toMatch(/99999 duplicate lines/);
  });

  it('canonicalizes IDN, percent-escapes, default ports and dot segments into one key (dry run)', async () => {
    const { ws } = env;
    const spellings = ['https://bücher.example/a/%7euser/./p%2epdf#top', 'HTTPS://xn--bcher-kva.example:443/a/b/../~user/p.pdf', 'https://BÜCHER.example/a/%7Euser/p.pdf'];
    const m = await ws.file('idn.jsonl', jsonl(spellings.map((url) => ({ id: 'idn', url }))));
    const res = await runCli(['download', m, '-o', ws.out, '--json', '--dry-run']);
    expect(res.records).toHaveLength(1);
    expect(res.records[0]).toMatchObject({ status: 'planned', canonical_url: 'https://xn--bcher-kva.example/a/~user/p.pdf' });
    expect(res.stderr).toMatch(/2 duplicate lines/);
  });

  it('keeps memory and the process alive on a manifest of one endless line', async () => {
    const { ws } = env;
    const m = await ws.file('endless.jsonl', Buffer.alloc(40 * 1024 * 1024, 0x61));
    const res = await runCli(['download', m, '-o', ws.out, '--json', '--no-progress'], { env: { NODE_OPTIONS: '--max-old-space-size=64' } });
    expect(res.code).toBe(1);
    expect(res.records).toEqual([expect.objectContaining({ status: 'invalid', reason: 'invalid_line', source: `${m}:1` })]);
    expect(existsSync(ws.out)).toBe(true);
  });
});

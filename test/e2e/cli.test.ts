import { chmod, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonl, runCli, workspace, type Workspace } from '../helpers/cli.js';
import { samplePdf, startOrigin, type Origin } from '../helpers/origin.js';

describe('cli: inputs, exit codes, status and export', () => {
  let origin: Origin;
  let ws: Workspace;

  beforeAll(async () => {
    origin = await startOrigin();
    for (let i = 0; i < 6; i += 1) origin.set(`/c/${i}.pdf`, { body: samplePdf(`cli-${i}`, 1500) });
    ws = await workspace();
  });
  afterAll(async () => {
    await origin.close();
    await ws.cleanup();
  });

  it('reads several manifests: bare URLs, gzip detected by magic bytes (any name), CRLF, BOM, comments, stdin', async () => {
    const plain = await ws.file('urls.txt', `\uFEFF# a comment\r\n${origin.url('/c/0.pdf')}\r\n\r\n${origin.url('/c/1.pdf')}\r\n`);
    const gz = await ws.file('works.data', gzipSync(jsonl([{ id: 'g2', url: origin.url('/c/2.pdf') }, { id: 'g3', url: origin.url('/c/3.pdf') }])));
    const out = join(ws.dir, 'multi');
    const res = await runCli(['download', plain, gz, '-', '-o', out, '--json'], { stdin: jsonl([{ id: 's4', url: origin.url('/c/4.pdf') }]) });
    expect(res.code).toBe(0);
    expect(res.records.map((r) => r.source).sort()).toEqual([`${gz}:1`, `${gz}:2`, `${plain}:2`, `${plain}:4`, '-:1'].sort());
    expect(res.records.every((r) => r.status === 'downloaded')).toBe(true);
  });

  it('--dry-run plans without any request or write', async () => {
    const m = await ws.file('dry.jsonl', jsonl([{ id: 'd5', url: origin.url('/c/5.pdf') }, { id: 'd5', url: origin.url('/c/5.pdf') }, 'https://openalex.org/W1 nope']));
    const out = join(ws.dir, 'dry-out');
    const before = origin.requests.length;
    const res = await runCli(['download', m, '-o', out, '--json', '--dry-run']);
    expect(res.code).toBe(1);
    expect(res.records.map((r) => r.status)).toEqual(['planned', 'invalid']);
    expect(origin.requests.length).toBe(before);
    expect(existsSync(out)).toBe(false);
  });

  it('exit 2 for usage errors, naming the flag or file, with nothing started', async () => {
    const m = await ws.file('u.jsonl', jsonl([{ url: origin.url('/c/0.pdf') }]));
    const shippedBreakers = await readFile(join(import.meta.dirname, '../../config/breakers.default.yaml'), 'utf8');
    expect(shippedBreakers).toContain('fail_max: 5');
    const out = join(ws.dir, 'never');
    const cases: [string[], Record<string, string>, RegExp][] = [
      [['download', m, '-o', out, '--concurrency', '0'], {}, /--concurrency/],
      [['download', m, '-o', out, '--max-bytes', '12XB'], {}, /--max-bytes/],
      [['download', m, '-o', out, '--bogus'], {}, /unknown option/],
      [['download', join(ws.dir, 'missing.jsonl'), '-o', out], {}, /missing\.jsonl/],
      [['download', m, '-o', out], { DOCSTOKG_PER_HOST: 'many' }, /--per-host.*DOCSTOKG_PER_HOST/],
      [['download'], {}, /missing required argument/],
      [['export', '-o', out, '--format', 'xml'], {}, /--format/],
      [['download', m, '-o', out, '--ratelimits', await ws.file('neg.yaml', 'version: 1\ndefaults:\n  artifact: {rates: ["-1/SECOND"]}\n')], {}, /neg\.yaml: defaults\.artifact\.rates\[0\]: bad rate "-1\/SECOND"/],
      [['download', m, '-o', out, '--ratelimits', await ws.file('list.yaml', 'version: 1\nhosts:\n  a.org: {artifact: {rates: "2/SECOND"}}\n')], {}, /list\.yaml: hosts\.a\.org\.artifact\.rates: expected a list of rates/],
      [['download', m, '-o', out, '--ratelimits', await ws.file('typo.yaml', 'version: 1\ndefaults:\n  artifact: {max_concurent: 2}\n')], {}, /typo\.yaml: defaults\.artifact\.max_concurent: unknown key/],
      [['download', m, '-o', out, '--breakers', await ws.file('br.yaml', 'defaults: {reset_timeout_s: 0}\n')], {}, /br\.yaml: defaults\.reset_timeout_s: must be at least/],
      [['download', m, '-o', out, '--breakers', await ws.file('syn.yaml', 'defaults: {fail_max: 3\n')], {}, /syn\.yaml: line \d+ YAML syntax error/],
      [['download', m, '-o', out, '--min-speed', 'fast'], {}, /--min-speed/],
      // A shipped config edited: the bundle knows the shipped files parsed, by their exact text.
      [['download', m, '-o', out, '--breakers', await ws.file('edited.yaml', shippedBreakers.replace('fail_max: 5', 'fail_max: 0'))], {}, /edited\.yaml: defaults\.fail_max: must be at least 1/],
    ];
    for (const [args, env, message] of cases) {
      const res = await runCli(args, { env });
      expect(res.code, args.join(' ')).toBe(2);
      expect(res.stderr).toMatch(message);
      expect(res.stderr).not.toMatch(/\n\s+at /);
    }
    expect(existsSync(out)).toBe(false);
  });

  it('exit 3 for an unusable ledger or an unwritable --out, without touching stored data', async () => {
    const m = await ws.file('f.jsonl', jsonl([{ url: origin.url('/c/0.pdf') }]));
    const badDb = await ws.file('bad.sqlite', 'this is not a database, just text that must survive'.repeat(100));
    const res = await runCli(['download', m, '-o', join(ws.dir, 'o3'), '--db', badDb]);
    expect(res.code).toBe(3);
    expect(res.stderr).toMatch(/ledger .*bad\.sqlite.* unusable/);
    expect(await readFile(badDb, 'utf8')).toBe('this is not a database, just text that must survive'.repeat(100));
    expect(res.stderr).not.toMatch(/\n\s+at /);
    if (process.getuid?.() !== 0) {
      const ro = join(ws.dir, 'ro');
      await mkdir(ro);
      await chmod(ro, 0o500);
      const r2 = await runCli(['download', m, '-o', ro]);
      expect(r2.code).toBe(3);
    } else {
      // root can write anywhere: an --out that is a regular file stands in for an unwritable one.
      const file = await ws.file('not-a-dir', 'x');
      const r2 = await runCli(['download', m, '-o', file]);
      expect(r2.code).toBe(3);
      expect(r2.stderr).toMatch(/not-a-dir.*not writable/);
    }
  });

  it('options come from DOCSTOKG_* environment variables; a flag wins', async () => {
    const m = await ws.file('env.jsonl', jsonl([{ id: 'e0', url: origin.url('/c/0.pdf') }]));
    const out = join(ws.dir, 'env-out');
    const res = await runCli(['download', m, '--json'], { env: { DOCSTOKG_OUT: out, DOCSTOKG_NO_PROGRESS: '1' } });
    expect(res.code).toBe(0);
    expect(existsSync(join(out, 'docstokg.sqlite'))).toBe(true);
    const flagWins = await runCli(['download', m, '--json', '-o', out], { env: { DOCSTOKG_OUT: join(ws.dir, 'elsewhere') } });
    expect(flagWins.records[0]?.status).toBe('skipped');
    expect(existsSync(join(ws.dir, 'elsewhere'))).toBe(false);
  });

  it('status and export report the ledger (jsonl and csv)', async () => {
    const out = join(ws.dir, 'rep');
    const m = await ws.file('rep.jsonl', jsonl([{ id: 'r0', url: origin.url('/c/0.pdf') }, { id: 'r1', url: origin.url('/c/1.pdf') }, { id: 'bad', url: origin.url('/nope.pdf') }]));
    await runCli(['download', m, '-o', out]);
    const st = await runCli(['status', '-o', out, '--json']);
    expect(st.code).toBe(0);
    expect(JSON.parse(st.stdout)).toMatchObject({ states: { done: 2, failed: 1 }, reasons: { http_404: 1 }, objects: 2, bytes_stored: 3000 });
    const human = await runCli(['status', '-o', out]);
    expect(human.stdout).toMatch(/objects stored:\s+2/);
    const ex = await runCli(['export', '-o', out]);
    expect(ex.records.map((r) => [r.id, r.status]).sort()).toEqual([['bad', 'failed'], ['r0', 'downloaded'], ['r1', 'downloaded']]);
    const csv = await runCli(['export', '-o', out, '--format', 'csv']);
    const lines = csv.stdout.trim().split('\n');
    expect(lines[0]!.split(',').slice(0, 5)).toEqual(['id', 'url', 'canonical_url', 'final_url', 'status']);
    expect(lines).toHaveLength(4);
    const none = await runCli(['status', '-o', join(ws.dir, 'empty')]);
    expect(none.code).toBe(3);
  });

  it('prints plain progress lines and a summary on stderr when not a TTY, nothing with --quiet', async () => {
    const out = join(ws.dir, 'quiet');
    const m = await ws.file('q.jsonl', jsonl([{ id: 'q0', url: origin.url('/c/0.pdf') }]));
    const loud = await runCli(['download', m, '-o', out]);
    expect(loud.stderr).toMatch(/docstokg: 1 downloaded/);
    expect(loud.stdout).toBe('');
    const quiet = await runCli(['download', m, '-o', out, '-q']);
    expect(quiet.stderr).toBe('');
  });

  it('--help and --version exit 0', async () => {
    const help = await runCli(['download', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/--per-host/);
    const v = await runCli(['--version']);
    expect(v.code).toBe(0);
    expect(v.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('keeps memory flat on a long manifest (200,000 lines under a 64 MB heap)', async () => {
    const path = join(ws.dir, 'long.txt');
    const lines: string[] = [];
    for (let i = 0; i < 200_000; i += 1) lines.push(`https://example.org/works/${i}.pdf`);
    await writeFile(path, `${lines.join('\n')}\n`);
    const res = await runCli(['download', path, '-o', join(ws.dir, 'long-out'), '--dry-run', '--json'], { env: { NODE_OPTIONS: '--max-old-space-size=64' } });
    expect(res.code).toBe(0);
    expect(res.records).toHaveLength(200_000);
    expect(await readdir(ws.dir)).not.toContain('long-out');
  });
});

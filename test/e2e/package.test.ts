import { execFileSync } from 'node:child_process';
import { mkdir, symlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { jsonl, originAndWorkspace, runCli } from '../helpers/cli.js';
import { samplePdf } from '../helpers/origin.js';

const ROOT = resolve(import.meta.dirname, '../..');

/** What `npm publish` would ship, and that it runs on its own. */
describe('the npm package', () => {
  const env = originAndWorkspace();

  it('holds only what the binary loads: no sources, tests, fixtures or unbundled dist/', () => {
    const json = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8' });
    const files = (JSON.parse(json) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
    const allowed = /^(README\.md|package\.json|ratelimits\.example\.yaml|bin\/docstokg\.js|config\/[a-z.]+\.yaml|dist\/bundle\/[\w-]+\.js)$/;
    expect(files.filter((f) => !allowed.test(f))).toEqual([]);
    expect(files).toContain('dist/bundle/cli.js');
  });

  it('runs from the unpacked tarball', { timeout: 60_000 }, async () => {
    const { origin, ws } = env;
    const dir = join(ws.dir, 'pkg');
    await mkdir(dir);
    const tgz = execFileSync('npm', ['pack', '--ignore-scripts', '--pack-destination', dir], { cwd: ROOT, encoding: 'utf8' }).trim().split('\n').pop()!;
    execFileSync('tar', ['-xzf', join(dir, tgz), '-C', dir]);
    // The registry would install the dependencies; this repository's stand in for them.
    await symlink(join(ROOT, 'node_modules'), join(dir, 'package', 'node_modules'));
    origin.set('/pkg.pdf', { body: samplePdf('pkg', 5000) });
    const manifest = await ws.file('pkg.jsonl', jsonl([{ id: 'pkg', url: origin.url('/pkg.pdf') }]));
    const res = await runCli(['download', manifest, '-o', join(ws.dir, 'pkg-out'), '--json'], { bin: join(dir, 'package', 'bin', 'docstokg.js') });
    expect(res.code, res.stderr).toBe(0);
    expect(res.records[0]).toMatchObject({ id: 'pkg', status: 'downloaded' });
  });
});

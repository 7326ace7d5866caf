import { mkdir, mkdtemp, readFile, readdir, readlink, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseSize } from '../../src/config.js';
import { backoffDelay, parseRetryAfter } from '../../src/http/retry-after.js';
import { actionFor } from '../../src/http/classify.js';
import { fileIdentity, finalizePart } from '../../src/store/finalize.js';
import { closeDirHandles, fsyncDir } from '../../src/store/fsync.js';
import { linkItem, safeName } from '../../src/store/link.js';

describe('safeName', () => {
  it.each(['../../etc/passwd', '/abs/path', 'a\0b', 'CON', '.hidden', '', 'x'.repeat(500), '10.1/abc'])('contains %j', (id) => {
    const n = safeName(id);
    expect(n).toMatch(/^[A-Za-z0-9_][A-Za-z0-9._-]*\.pdf$/);
    expect(n.length).toBeLessThanOrEqual(160);
  });
  it('keeps plain ids and separates ids that sanitize alike', () => {
    expect(safeName('W123')).toBe('W123.pdf');
    expect(safeName('a/b')).not.toBe(safeName('a:b'));
    expect(safeName('a/b')).not.toBe(safeName('a_b'));
  });
});

describe('store', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'docstokg-store-'));
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  it('keeps one open handle per fsync\'d directory until closed, and tries a failed one again', async () => {
    // Only this test's directories count: other descriptors of the process come and go.
    const openFds = async () => {
      let n = 0;
      for (const fd of await readdir('/proc/self/fd')) {
        const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
        if (target.startsWith(`${dir}/`)) n += 1;
      }
      return n;
    };
    const dirs = ['a', 'b', 'c'].map((d) => join(dir, d));
    for (const d of dirs) await mkdir(d);
    await closeDirHandles();
    const before = await openFds();
    for (let i = 0; i < 5; i += 1) await Promise.all(dirs.map((d) => fsyncDir(d)));
    expect(await openFds()).toBe(before + 3);
    const later = join(dir, 'later');
    await expect(fsyncDir(later)).rejects.toMatchObject({ code: 'ENOENT' });
    await mkdir(later);
    await fsyncDir(later);
    expect(await openFds()).toBe(before + 4);
    await closeDirHandles();
    expect(await openFds()).toBe(before);
  });

  it('finalizes by content address and dedups an existing object', async () => {
    const sha = 'ab'.repeat(32);
    await writeFile(join(dir, 'p1'), 'one');
    expect(await finalizePart(dir, join(dir, 'p1'), sha, true, null)).toEqual({ path: `ab/${sha}.pdf`, deduped: false });
    await writeFile(join(dir, 'p2'), 'two');
    expect(await finalizePart(dir, join(dir, 'p2'), sha, true, fileIdentity(await stat(join(dir, 'p2'), { bigint: true })))).toEqual({ path: `ab/${sha}.pdf`, deduped: true });
    expect(await readFile(join(dir, 'ab', `${sha}.pdf`), 'utf8')).toBe('one');
    expect((await readdir(dir)).sort()).toEqual(['ab']);
  });

  it('moves only the part its holder wrote: another file at the part path (a successor\'s) is left alone', async () => {
    const sha = 'cd'.repeat(32);
    await writeFile(join(dir, 'p'), 'mine');
    const mine = fileIdentity(await stat(join(dir, 'p'), { bigint: true }));
    // The successor unlinked it and writes its own part under the same name.
    await unlink(join(dir, 'p'));
    await writeFile(join(dir, 'p'), 'theirs, half written');
    expect(await finalizePart(dir, join(dir, 'p'), sha, true, mine)).toBe('not-ours');
    expect(await readFile(join(dir, 'p'), 'utf8')).toBe('theirs, half written');
    expect(await readdir(join(dir, 'cd')).catch(() => [])).toEqual([]);
  });

  it('replaces a link view atomically when the object changes', async () => {
    await writeFile(join(dir, 'o1'), 'v1');
    await writeFile(join(dir, 'o2'), 'v2');
    const links = join(dir, 'links');
    await linkItem(links, 'x', join(dir, 'o1'));
    await linkItem(links, 'x', join(dir, 'o2'));
    expect(await readFile(join(links, 'x.pdf'), 'utf8')).toBe('v2');
    expect(await readdir(links)).toEqual(['x.pdf']);
  });
});

describe('small parsers and the classification table', () => {
  it('parses sizes', () => {
    expect(parseSize('512MiB')).toBe(512 * 1024 ** 2);
    expect(parseSize('1gib')).toBe(1024 ** 3);
    expect(parseSize('100')).toBe(100);
    expect(parseSize('12XB')).toBeNull();
    expect(parseSize('-1')).toBeNull();
  });
  it('parses Retry-After as seconds or an HTTP date', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(parseRetryAfter('7', now)).toBe(7000);
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('soon', now)).toBeNull();
  });
  it('backs off with full jitter under an exponential cap', () => {
    expect(backoffDelay(3, 100, 30_000, () => 0.999)).toBe(799);
    expect(backoffDelay(20, 100, 30_000, () => 0.5)).toBe(15_000);
    expect(backoffDelay(2, 100, 30_000, () => 0)).toBe(0);
  });
  it('retries transient failures only', () => {
    expect(actionFor('http_503')).toBe('retry');
    expect(actionFor('http_429')).toBe('retry');
    expect(actionFor('http_408')).toBe('retry');
    expect(actionFor('http_404')).toBe('next');
    expect(actionFor('not_pdf')).toBe('next');
    expect(actionFor('quota')).toBe('stop');
  });
});

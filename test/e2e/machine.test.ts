import Database from 'better-sqlite3';
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { jsonl, originAndWorkspace, runCli } from '../helpers/cli.js';
import { samplePdf, sha256Hex, startOrigin } from '../helpers/origin.js';

/**
 * The machine fails under the run: a corrupt or locked ledger, a read-only or full disk. Each
 * gives a clear message and exit 3, keeps what was stored, and the next run after the fix completes.
 */
const small = samplePdf('machine-small', 64 * 1024);
const large = samplePdf('machine-large', 4 * 1024 * 1024);

const mounted: string[] = [];
function mountTmpfs(dir: string, options: string): boolean {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], { stdio: 'pipe' });
    mounted.push(dir);
    return true;
  } catch {
    return false;
  }
}
function remount(dir: string, options: string): void {
  execFileSync('mount', ['-o', `remount,${options}`, dir], { stdio: 'pipe' });
}
const canMount = process.platform === 'linux' && process.getuid?.() === 0;

describe('machine failures', () => {
  const env = originAndWorkspace(() =>
    startOrigin({ '/small.pdf': { body: small }, '/large.pdf': { body: large, chunked: true }, '/b.pdf': { body: samplePdf('machine-b', 8192) } }),
  );
  afterAll(() => {
    for (const dir of mounted.reverse()) execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
  });

  async function storeOne(out: string, ...flags: string[]): Promise<string> {
    const m = await env.ws.file(`first-${Math.random().toString(36).slice(2)}.jsonl`, jsonl([{ id: 'small', url: env.origin.url('/small.pdf') }]));
    const res = await runCli(['download', m, '-o', out, '--json', ...flags]);
    expect(res.code).toBe(0);
    return join(out, res.records[0]!.path as string);
  }

  async function intact(path: string): Promise<void> {
    expect(sha256Hex(await readFile(path))).toBe(sha256Hex(small));
  }

  function noStack(stderr: string): void {
    expect(stderr).not.toMatch(/\n\s+at |internal error/);
  }

  it('a corrupt ledger: exit 3 naming it, the file and the store untouched; with the ledger moved aside the next run completes', async () => {
    const out = join(env.ws.dir, 'corrupt');
    const stored = await storeOne(out);
    const db = join(out, 'docstokg.sqlite');
    // Checkpoint the WAL into the file, then overwrite the SQLite header.
    new Database(db).pragma('wal_checkpoint(TRUNCATE)');
    const bytes = await readFile(db);
    bytes.write('garbage garbage!', 0, 'latin1');
    await writeFile(db, bytes);
    const m = await env.ws.file('corrupt.jsonl', jsonl([{ id: 'b', url: env.origin.url('/b.pdf') }]));
    const res = await runCli(['download', m, '-o', out, '--json']);
    expect(res.code).toBe(3);
    expect(res.stderr).toMatch(/docstokg: fatal: ledger .*docstokg\.sqlite is unusable: .*(SQLITE_NOTADB)/);
    noStack(res.stderr);
    expect((await readFile(db)).equals(bytes)).toBe(true);
    await intact(stored);
    await rename(db, `${db}.corrupt`);
    const after = await runCli(['download', m, '-o', out, '--json']);
    expect(after.code).toBe(0);
    expect(after.records[0]).toMatchObject({ status: 'downloaded' });
    await intact(stored);
  });

  it('a ledger locked by another process: exit 3 after --lock-timeout; once released the run completes', async () => {
    const out = join(env.ws.dir, 'locked');
    const stored = await storeOne(out);
    const holder = new Database(join(out, 'docstokg.sqlite'));
    holder.prepare('BEGIN EXCLUSIVE').run();
    const m = await env.ws.file('locked.jsonl', jsonl([{ id: 'b', url: env.origin.url('/b.pdf') }]));
    try {
      const res = await runCli(['download', m, '-o', out, '--json', '--lock-timeout', '0.5']);
      expect(res.code).toBe(3);
      expect(res.stderr).toMatch(/locked by another process.*--lock-timeout/);
      noStack(res.stderr);
    } finally {
      holder.prepare('COMMIT').run();
      holder.close();
    }
    await intact(stored);
    const after = await runCli(['download', m, '-o', out, '--json']);
    expect(after.code).toBe(0);
    expect(after.records[0]).toMatchObject({ status: 'downloaded' });
  });

  it.skipIf(!canMount)('a read-only --out: exit 3, nothing lost; writable again, the run completes', async () => {
    const out = join(env.ws.dir, 'ro');
    await mkdir(out);
    if (!mountTmpfs(out, 'size=16m')) return console.warn('skipped: cannot mount a tmpfs here');
    const stored = await storeOne(out, '--min-free', '0');
    remount(out, 'ro');
    const m = await env.ws.file('ro.jsonl', jsonl([{ id: 'b', url: env.origin.url('/b.pdf') }]));
    const res = await runCli(['download', m, '-o', out, '--json', '--min-free', '0']);
    expect(res.code).toBe(3);
    expect(res.stderr).toMatch(/docstokg: fatal: .*(EROFS|not writable)/);
    noStack(res.stderr);
    await intact(stored);
    remount(out, 'rw');
    const after = await runCli(['download', m, '-o', out, '--json', '--min-free', '0']);
    expect(after.code).toBe(0);
    expect(after.records[0]).toMatchObject({ status: 'downloaded' });
  });

  it.skipIf(!canMount)('a full disk: exit 3 "disk full", earlier objects intact; with space again the run completes', async () => {
    const out = join(env.ws.dir, 'full');
    await mkdir(out);
    if (!mountTmpfs(out, 'size=1m')) return console.warn('skipped: cannot mount a tmpfs here');
    const db = join(env.ws.dir, 'full.sqlite');
    const stored = await storeOne(out, '--db', db, '--min-free', '0');
    // No Content-Length, so the quota guard cannot see it coming: the write itself fails.
    const m = await env.ws.file('full.jsonl', jsonl([{ id: 'large', url: env.origin.url('/large.pdf') }, { id: 'b', url: env.origin.url('/b.pdf') }]));
    const res = await runCli(['download', m, '-o', out, '--db', db, '--json', '--min-free', '0', '-c', '1']);
    expect(res.code).toBe(3);
    expect(res.stderr).toMatch(/docstokg: fatal: disk full \(ENOSPC\).*Stored files are intact/);
    noStack(res.stderr);
    await intact(stored);
    remount(out, 'size=32m');
    const after = await runCli(['download', m, '-o', out, '--db', db, '--json', '--min-free', '0']);
    expect(after.code).toBe(0);
    expect(new Map(after.records.map((r) => [r.id, r.sha256]))).toEqual(new Map([['large', sha256Hex(large)], ['b', sha256Hex(samplePdf('machine-b', 8192))]]));
    const reconcile = await runCli(['reconcile', '-o', out, '--db', db, '--verify']);
    expect(reconcile.code).toBe(0);
    await intact(stored);
  });
});

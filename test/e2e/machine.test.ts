import Database from 'better-sqlite3';
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { jsonl, originAndWorkspace, runCli, type CliResult } from '../helpers/cli.js';
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

  /**
   * The run fails with exit 3 and one line matching `message`, and keeps what was stored; after
   * `fix`, the same run (or `afterArgs`) completes. `failed` gets the failed run's result.
   */
  async function fatalThenFixed(args: string[], message: RegExp, stored: string, fix: () => unknown, afterArgs = args, failed?: (res: CliResult) => void): Promise<CliResult> {
    const res = await runCli(args);
    failed?.(res);
    expect(res.code).toBe(3);
    expect(res.stderr).toMatch(message);
    expect(res.stderr).not.toMatch(/\n\s+at |internal error/);
    await intact(stored);
    await fix();
    const after = await runCli(afterArgs);
    expect(after.code).toBe(0);
    await intact(stored);
    return after;
  }

  const oneMore = (name: string): Promise<string> => env.ws.file(name, jsonl([{ id: 'b', url: env.origin.url('/b.pdf') }]));

  it('a corrupt ledger: exit 3 naming it, the file and the store untouched; with the ledger moved aside the next run completes', async () => {
    const out = join(env.ws.dir, 'corrupt');
    const stored = await storeOne(out);
    const db = join(out, 'docstokg.sqlite');
    // Checkpoint the WAL into the file, then overwrite the SQLite header.
    new Database(db).pragma('wal_checkpoint(TRUNCATE)');
    const bytes = await readFile(db);
    bytes.write('garbage garbage!', 0, 'latin1');
    await writeFile(db, bytes);
    const after = await fatalThenFixed(['download', await oneMore('corrupt.jsonl'), '-o', out, '--json'], /docstokg: fatal: ledger .*docstokg\.sqlite is unusable: .*(SQLITE_NOTADB)/, stored, async () => {
      expect((await readFile(db)).equals(bytes)).toBe(true);
      await rename(db, `${db}.corrupt`);
    });
    expect(after.records[0]).toMatchObject({ status: 'downloaded' });
  });

  it('a ledger locked by another process: exit 3 after --lock-timeout; once released the run completes', async () => {
    const out = join(env.ws.dir, 'locked');
    const stored = await storeOne(out);
    const holder = new Database(join(out, 'docstokg.sqlite'));
    holder.prepare('BEGIN EXCLUSIVE').run();
    const release = (): void => {
      if (!holder.open) return;
      holder.prepare('COMMIT').run();
      holder.close();
    };
    try {
      const after = await fatalThenFixed(['download', await oneMore('locked.jsonl'), '-o', out, '--json', '--lock-timeout', '0.5'], /locked by another process.*--lock-timeout/, stored, release);
      expect(after.records[0]).toMatchObject({ status: 'downloaded' });
    } finally {
      release();
    }
  });

  it.skipIf(!canMount)('a read-only --out: exit 3, nothing lost; writable again, the run completes', async () => {
    const out = join(env.ws.dir, 'ro');
    await mkdir(out);
    if (!mountTmpfs(out, 'size=16m')) return console.warn('skipped: cannot mount a tmpfs here');
    const stored = await storeOne(out, '--min-free', '0');
    remount(out, 'ro');
    const args = ['download', await oneMore('ro.jsonl'), '-o', out, '--json', '--min-free', '0'];
    const after = await fatalThenFixed(args, /docstokg: fatal: .*(EROFS|not writable)/, stored, () => remount(out, 'rw'));
    expect(after.records[0]).toMatchObject({ status: 'downloaded' });
  });

  it.skipIf(!canMount)('a full disk: exit 3 "disk full", earlier objects intact; with space again the run completes', async () => {
    const out = join(env.ws.dir, 'full');
    await mkdir(out);
    if (!mountTmpfs(out, 'size=1m')) return console.warn('skipped: cannot mount a tmpfs here');
    const db = join(env.ws.dir, 'full.sqlite');
    const stored = await storeOne(out, '--db', db, '--min-free', '0');
    // No Content-Length, so the quota guard cannot see it coming: the write itself fails.
    // The stored item comes first: its `skipped` record is printed although the run then fails.
    const m = await env.ws.file('full.jsonl', jsonl([{ id: 'small', url: env.origin.url('/small.pdf') }, { id: 'large', url: env.origin.url('/large.pdf') }, { id: 'b', url: env.origin.url('/b.pdf') }]));
    const args = ['download', m, '-o', out, '--db', db, '--json', '--min-free', '0'];
    const skippedFirst = (res: CliResult): void => expect(res.records.map((r) => [r.id, r.status])).toContainEqual(['small', 'skipped']);
    const after = await fatalThenFixed([...args, '-c', '1'], /docstokg: fatal: disk full \(ENOSPC\).*Stored files are intact/, stored, () => remount(out, 'size=32m'), args, skippedFirst);
    expect(new Map(after.records.map((r) => [r.id, r.sha256]))).toEqual(
      new Map([['small', sha256Hex(small)], ['large', sha256Hex(large)], ['b', sha256Hex(samplePdf('machine-b', 8192))]]),
    );
    const reconcile = await runCli(['reconcile', '-o', out, '--db', db, '--verify']);
    expect(reconcile.code).toBe(0);
    await intact(stored);
  });
});

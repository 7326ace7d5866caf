import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DOWNLOAD_OPTIONS, resolveOptions, SHARED_OPTIONS } from '../../src/config.js';
import { discardPart, LeaseLost, linkOnce, type OpsContext } from '../../src/download/ops.js';
import { Events } from '../../src/events.js';
import { SqliteLedger } from '../../src/ledger/sqlite.js';
import { parseLine } from '../../src/manifest/parse.js';
import { DirStore } from '../../src/store/dir-store.js';
import { partPath } from '../../src/store/paths.js';

describe('a holder that lost its lease', () => {
  let out: string;
  beforeEach(async () => {
    out = await mkdtemp(join(tmpdir(), 'docstokg-ops-'));
  });
  afterEach(() => rm(out, { recursive: true, force: true }));

  it("never deletes its successor's part", async () => {
    const ledger = new SqliteLedger(join(out, 'docstokg.sqlite'));
    const p = parseLine({ file: 'm', line: 1, text: 'https://a.org/x.pdf' });
    if (p.kind !== 'item') throw new Error('not an item');
    const job = ledger.plan(p.item, 1);
    if (job.kind !== 'work') throw new Error('not planned');
    // The old holder's lease expired (it was stopped); the successor took the job over.
    ledger.claim(p.item.key, 'old', 1, 10);
    ledger.claim(p.item.key, 'new', 100, 60_000);
    const part = partPath(out, p.item.key);
    await mkdir(dirname(part), { recursive: true });
    await writeFile(part, 'the successor is writing this');
    ledger.savePart(p.item.key, { url: 'https://a.org/x.pdf', etag: '"e"', last_modified: null, total: 100 }, 100);
    const opts = resolveOptions<OpsContext['opts']>([...SHARED_OPTIONS, ...DOWNLOAD_OPTIONS], { out }, {});
    const ctx = (owner: string): OpsContext => ({ opts, ledger, store: new DirStore(out, true), owner, now: () => 200, events: new Events() });
    await expect(discardPart(ctx('old'), job.row)).rejects.toBeInstanceOf(LeaseLost);
    expect(existsSync(part)).toBe(true);
    expect(ledger.getPart(p.item.key)).toBeDefined();
    await discardPart(ctx('new'), job.row);
    expect(existsSync(part)).toBe(false);
    ledger.close();
  });

  it('does not link for a job it no longer holds (its successor may store another version)', async () => {
    const ledger = new SqliteLedger(join(out, 'docstokg.sqlite'));
    const p = parseLine({ file: 'm', line: 1, text: 'https://a.org/y.pdf' });
    if (p.kind !== 'item') throw new Error('not an item');
    const job = ledger.plan(p.item, 1);
    if (job.kind !== 'work') throw new Error('not planned');
    ledger.claim(p.item.key, 'old', 1, 10);
    ledger.claim(p.item.key, 'new', 100, 60_000);
    const links = join(out, 'links');
    const opts = resolveOptions<OpsContext['opts']>([...SHARED_OPTIONS, ...DOWNLOAD_OPTIONS], { out, linkDir: links }, {});
    const ctx: OpsContext = { opts, ledger, store: new DirStore(out, true), owner: 'old', now: () => 200, events: new Events() };
    await expect(linkOnce(ctx, job.row, 'ab'.repeat(32))).rejects.toBeInstanceOf(LeaseLost);
    expect(existsSync(links)).toBe(false);
    ledger.close();
  });
});

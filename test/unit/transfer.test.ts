import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LeaseLost } from '../../src/download/ops.js';
import { emptyFacts, transfer, type TransferInput } from '../../src/download/transfer.js';
import type { RequestGate } from '../../src/http/request-gate.js';
import { HostHeaders } from '../../src/hosts/headers.js';
import { createAgent } from '../../src/http/client.js';
import { UrlPolicy } from '../../src/http/url-policy.js';
import type { PartRow } from '../../src/ledger/types.js';
import { samplePdf, startOrigin, type Origin } from '../helpers/origin.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('transfer of a part whose version changed', () => {
  let origin: Origin;
  let dir: string;
  const A = samplePdf('version A', 300_000);
  const B = samplePdf('version B', 300_000);
  beforeAll(async () => {
    origin = await startOrigin({ '/doc.pdf': { body: B, etag: '"b1"', ranges: true } });
    dir = await mkdtemp(join(tmpdir(), 'docstokg-transfer-'));
  });
  afterAll(async () => {
    await origin.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('drops the old bytes before the new validators are stored, then reports the new body whole', async () => {
    const part = join(dir, 'doc.part');
    await writeFile(part, A.subarray(0, 100_000));
    const partRow: PartRow = { url: origin.url('/doc.pdf'), etag: '"a1"', last_modified: null, total: A.length };
    const policy = new UrlPolicy({ allowHost: [], denyHost: [], denyPrivate: false });
    const gate: RequestGate = { enter: async () => ({ sent: () => undefined, settle: () => true }) };
    const dispatcher = await createAgent({ connectTimeout: 2000, stallTimeout: 2000, concurrency: 4, blocked: policy.ranges });
    // A kill right after the new validators' commit must not find old bytes under them.
    const seenAtFresh: { row: PartRow; partExists: boolean }[] = [];
    const completed: { sha256: string; size: number }[] = [];
    const input: TransferInput = {
      url: partRow.url, part, out: dir, headers: {}, auth: null, policy, hostHeaders: new HostHeaders(), dispatcher,
      maxBytes: 1 << 24, minFree: 0, minSpeed: { bytesPerSecond: 0, windowMs: 1000 }, fsync: false, signal: new AbortController().signal,
      held: 100_000, partFile: true, partRow, gate, role: 'artifact', readPages: false, holds: () => true,
      onFreshPart: (row) => {
        seenAtFresh.push({ row, partExists: existsSync(part) });
        return null;
      },
      onBodyComplete: (body) => completed.push(body),
    };
    const result = await transfer(input, emptyFacts());
    await dispatcher.close();
    expect(origin.requests[0]!.headers['if-range']).toBe('"a1"');
    expect(seenAtFresh).toEqual([{ row: { url: partRow.url, etag: '"b1"', last_modified: null, total: B.length }, partExists: false }]);
    expect(completed).toEqual([{ sha256: sha(B), size: B.length }]);
    expect(result).toMatchObject({ sha256: sha(B), size: B.length, resumeFrom: 0 });
    expect((await readFile(part)).equals(B)).toBe(true);
  });

  it("leaves the part alone when the answer comes after the lease went to another holder", async () => {
    const part = join(dir, 'taken.part');
    const successors = Buffer.from('bytes the successor is writing');
    await writeFile(part, successors);
    const policy = new UrlPolicy({ allowHost: [], denyHost: [], denyPrivate: false });
    const gate: RequestGate = { enter: async () => ({ sent: () => undefined, settle: () => true }) };
    const dispatcher = await createAgent({ connectTimeout: 2000, stallTimeout: 2000, concurrency: 4, blocked: policy.ranges });
    const input: TransferInput = {
      url: origin.url('/doc.pdf'), part, out: dir, headers: {}, auth: null, policy, hostHeaders: new HostHeaders(), dispatcher,
      maxBytes: 1 << 24, minFree: 0, minSpeed: { bytesPerSecond: 0, windowMs: 1000 }, fsync: false, signal: new AbortController().signal,
      held: 0, partFile: true, partRow: undefined, gate, role: 'artifact', readPages: false,
      holds: () => false,
      onFreshPart: () => null,
      onBodyComplete: () => undefined,
    };
    await expect(transfer(input, emptyFacts())).rejects.toBeInstanceOf(LeaseLost);
    await dispatcher.close();
    expect((await readFile(part)).equals(successors)).toBe(true);
  });
});

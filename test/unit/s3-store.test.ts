import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DOWNLOAD_OPTIONS, resolveOptions, SHARED_OPTIONS } from '../../src/config.js';
import { finalizeOnce, opKey, type OpsContext } from '../../src/download/ops.js';
import { Events } from '../../src/events.js';
import { SqliteLedger } from '../../src/ledger/sqlite.js';
import { parseLine } from '../../src/manifest/parse.js';
import { partPath } from '../../src/store/paths.js';
import { S3Store } from '../../src/store/s3-store.js';
import { samplePdf } from '../helpers/origin.js';
import { sha256, startS3, type S3Origin } from '../helpers/s3.js';

describe('a finalize into a bucket, begun by a holder that was killed', () => {
  let s3: S3Origin;
  let dir: string;
  beforeAll(async () => {
    s3 = await startS3();
    dir = await mkdtemp(join(tmpdir(), 'docstokg-s3-ops-'));
  });
  afterAll(async () => {
    await s3.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('places its part again when the bucket kept a cut-off upload, instead of taking it as done', async () => {
    Object.assign(process.env, s3.env);
    const store = await S3Store.open({ bucket: s3.bucket, prefix: 'ops' }, { endpoint: s3.endpoint, staging: dir, retries: 0, retryDelayMs: 0 });
    const ledger = new SqliteLedger(join(dir, 'ledger.sqlite'));
    const p = parseLine({ file: 'm', line: 1, text: 'https://a.org/cut.pdf' });
    if (p.kind !== 'item') throw new Error('not an item');
    const planned = ledger.plan(p.item, 1);
    if (planned.kind !== 'work') throw new Error('not planned');
    ledger.claim(p.item.key, 'me', 1, 60_000);
    const body = samplePdf('cut off', 300_000);
    const sha = sha256(body);
    // The killed holder had begun the finalize, and the bucket kept the first part of its upload.
    ledger.beginOp(opKey('finalize', p.item.key, sha), p.item.key, 'finalize', 'gone', 2, sha);
    const part = partPath(dir, p.item.key);
    await mkdir(dirname(part), { recursive: true });
    await writeFile(part, body);
    const client = new S3Client({ endpoint: s3.endpoint, forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
    await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: store.key(sha), Body: body.subarray(0, 100_000) }));
    client.destroy();

    const opts = resolveOptions<OpsContext['opts']>([...SHARED_OPTIONS, ...DOWNLOAD_OPTIONS], { out: `s3://${s3.bucket}/ops` }, {});
    const ctx: OpsContext = { opts, ledger, store, owner: 'me', now: () => 100, events: new Events() };
    expect(await finalizeOnce(ctx, planned.row, sha, null)).toEqual({ path: `${sha.slice(0, 2)}/${sha}.pdf`, deduped: false });
    expect((await s3.get(store.key(sha)))?.equals(body)).toBe(true);
    expect(existsSync(part)).toBe(false);
    ledger.close();
    store.close();
  });
});

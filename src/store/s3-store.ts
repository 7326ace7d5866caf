import { createHash, randomUUID } from 'node:crypto';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { S3Client } from '@aws-sdk/client-s3';
import pRetry from 'p-retry';
import { S3_MULTIPART_MIN_BYTES } from '../config.js';
import { FatalError } from '../errors.js';
import { storeErrorIsTransient } from '../http/classify.js';
import { backoffDelay } from '../http/retry-after.js';
import type { Finalized } from './finalize.js';
import { fileIdentity } from './finalize.js';
import { S3_PREFIX, type ObjectStore } from './object-store.js';
import { objectRelPath } from './paths.js';

type S3 = typeof import('@aws-sdk/client-s3');

const MULTIPART_PART_BYTES = 16 * 1024 * 1024;
const MULTIPART_QUEUE = 4;

export interface S3Location {
  bucket: string;
  /** the key prefix without a trailing slash; '' for the bucket's root */
  prefix: string;
}

/** `s3://bucket/prefix` → bucket and prefix; null when it is not one. */
export function parseS3Url(out: string): S3Location | null {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(out);
  if (!m) return null;
  return { bucket: m[1]!, prefix: (m[2] ?? '').replace(/\/+$/, '') };
}

export interface S3StoreOptions {
  endpoint: string | null;
  /** local directory for parts (--staging) */
  staging: string;
  retries: number;
  retryDelayMs: number;
}

const status = (err: unknown): number | undefined => (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
const missing = (err: unknown): boolean => status(err) === 404 || (err as Error).name === 'NotFound' || (err as Error).name === 'NoSuchKey';

/**
 * The store in an S3-compatible bucket: `<prefix>/<aa>/<sha256>.pdf`, uploaded once from a
 * verified local part with S3's SHA-256 checksum (the service refuses bytes that do not match).
 * A conditional put (If-None-Match: *) makes a concurrent upload of the same digest a dedup where
 * the service honours it; a HEAD first covers the others, and identical content makes that race
 * harmless. Every call is retried on transient errors with the downloads' backoff; a permanent
 * error ends the run.
 */
export class S3Store implements ObjectStore {
  readonly kind = 's3';
  readonly display: string;
  readonly local: string;

  private constructor(
    private readonly sdk: S3,
    private readonly client: S3Client,
    private readonly at: S3Location,
    private readonly opts: S3StoreOptions,
  ) {
    this.display = `${S3_PREFIX}${at.bucket}${at.prefix ? `/${at.prefix}` : ''}`;
    this.local = opts.staging;
  }

  static async open(at: S3Location, opts: S3StoreOptions): Promise<S3Store> {
    // The SDK warns on stderr that its 2027 releases need Node.js 22; this version runs on 20.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    const sdk = await import('@aws-sdk/client-s3');
    const region = process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? (opts.endpoint ? 'us-east-1' : undefined);
    const client = new sdk.S3Client({
      ...(region ? { region } : {}),
      ...(opts.endpoint ? { endpoint: opts.endpoint, forcePathStyle: true } : {}),
      // Retries are ours (the downloads' policy), not the SDK's.
      maxAttempts: 1,
    });
    return new S3Store(sdk, client, at, opts);
  }

  key(sha256: string): string {
    return `${this.at.prefix ? `${this.at.prefix}/` : ''}${objectRelPath(sha256)}`;
  }

  /** One call, retried while it fails transiently; a permanent failure ends the run (exit 3). */
  private async call<T>(what: string, fn: () => Promise<T>, passes: (err: unknown) => boolean = () => false): Promise<T> {
    try {
      return await pRetry(fn, {
        retries: this.opts.retries,
        minTimeout: 0,
        maxTimeout: 0,
        shouldRetry: async ({ error, attemptNumber }) => {
          if (passes(error) || !storeErrorIsTransient(error)) return false;
          await sleep(backoffDelay(attemptNumber - 1, this.opts.retryDelayMs));
          return true;
        },
      });
    } catch (err) {
      if (passes(err)) throw err;
      const code = (err as Error).name || (err as { code?: string }).code || 'error';
      throw new FatalError(`store ${this.display}: ${what} failed: ${code}${status(err) ? ` (HTTP ${status(err)})` : ''}: ${(err as Error).message}`, { cause: err });
    }
  }

  async preflight(): Promise<void> {
    // A key of its own per run: processes of a fleet starting together never write and delete
    // one key at once (a store that is not strongly consistent could then miss or keep it).
    const Key = `${this.at.prefix ? `${this.at.prefix}/` : ''}.docstokg-preflight-${randomUUID()}`;
    await this.call('a test write', () => this.client.send(new this.sdk.PutObjectCommand({ Bucket: this.at.bucket, Key, Body: 'docstokg' })));
    await this.call('a test delete', () => this.client.send(new this.sdk.DeleteObjectCommand({ Bucket: this.at.bucket, Key })));
  }

  async size(sha256: string): Promise<number | null> {
    try {
      const head = await this.call('HEAD', () => this.client.send(new this.sdk.HeadObjectCommand({ Bucket: this.at.bucket, Key: this.key(sha256) })), missing);
      return head.ContentLength ?? 0;
    } catch (err) {
      if (missing(err)) return null;
      throw err;
    }
  }

  async exists(sha256: string): Promise<boolean> {
    return (await this.size(sha256)) !== null;
  }

  /**
   * Places in this process, by digest: the same bytes under two URLs finishing together would
   * otherwise both find no object and both upload it (a service that ignores If-None-Match keeps
   * both puts). The second waits for the first, then finds its object: a dedup, one upload.
   */
  private readonly placing = new Map<string, Promise<unknown>>();

  async place(part: string, sha256: string, identity: string | null): Promise<Finalized | 'not-ours'> {
    const before = this.placing.get(sha256);
    const mine = (before ? before.catch(() => undefined) : Promise.resolve()).then(() => this.placeNow(part, sha256, identity));
    this.placing.set(sha256, mine);
    try {
      return await mine;
    } finally {
      if (this.placing.get(sha256) === mine) this.placing.delete(sha256);
    }
  }

  private async placeNow(part: string, sha256: string, identity: string | null): Promise<Finalized | 'not-ours'> {
    // The part is opened, and checked to be the file this holder wrote, before anything is sent:
    // a successor's part found at that path is never uploaded; through this handle, a successor
    // that unlinks and rewrites the path cannot change what goes up.
    const fh = await open(part, 'r');
    try {
      const st = await fh.stat({ bigint: true });
      if (identity !== null && fileIdentity(st) !== identity) return 'not-ours';
      const path = objectRelPath(sha256);
      const size = Number(st.size);
      // An object of another size under this digest is a cut-off upload a lax service kept (S3
      // itself never keeps one): it is replaced.
      const have = await this.size(sha256);
      const deduped = have === size || (await this.upload(fh, size, sha256, have === null));
      await unlink(part).catch(() => undefined);
      return { path, deduped };
    } finally {
      await fh.close();
    }
  }

  /**
   * Uploads the part; true when the service says the object appeared meanwhile (a dedup).
   * `absent`: the object is not there, and is put only on that condition.
   */
  private async upload(fh: FileHandle, size: number, sha256: string, absent: boolean): Promise<boolean> {
    const Bucket = this.at.bucket;
    const Key = this.key(sha256);
    const body = (): Readable => fh.createReadStream({ start: 0, autoClose: false });
    // (lib-storage mistakes a file handle's stream for a path's and sends it wrong: it gets a plain Readable.)
    const preconditionFailed = (err: unknown): boolean => status(err) === 412 || (err as Error).name === 'PreconditionFailed';
    try {
      if (size < S3_MULTIPART_MIN_BYTES) {
        const ChecksumSHA256 = Buffer.from(sha256, 'hex').toString('base64');
        await this.call('upload', () => this.client.send(new this.sdk.PutObjectCommand({ Bucket, Key, Body: body(), ContentLength: size, ContentType: 'application/pdf', ChecksumSHA256, ...(absent ? { IfNoneMatch: '*' } : {}) })), preconditionFailed);
      } else {
        const { Upload } = await import('@aws-sdk/lib-storage');
        await this.call('multipart upload', () =>
          new Upload({ client: this.client, queueSize: MULTIPART_QUEUE, partSize: MULTIPART_PART_BYTES, leavePartsOnError: false, params: { Bucket, Key, Body: Readable.from(body()), ContentType: 'application/pdf', ChecksumAlgorithm: 'SHA256' } }).done(),
        );
      }
      return false;
    } catch (err) {
      if (preconditionFailed(err)) return true;
      throw err;
    }
  }

  async *objects(): AsyncIterable<string> {
    const Prefix = this.at.prefix ? `${this.at.prefix}/` : '';
    let ContinuationToken: string | undefined;
    do {
      const page = await this.call('LIST', () => this.client.send(new this.sdk.ListObjectsV2Command({ Bucket: this.at.bucket, Prefix, ContinuationToken })));
      for (const o of page.Contents ?? []) {
        const sha = /^[0-9a-f]{2}\/([0-9a-f]{64})\.pdf$/.exec((o.Key ?? '').slice(Prefix.length))?.[1];
        if (sha && o.Key!.slice(Prefix.length, Prefix.length + 2) === sha.slice(0, 2)) yield sha;
      }
      ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (ContinuationToken);
  }

  async presence(): Promise<(sha256: string) => Promise<boolean>> {
    const listed = new Set<string>();
    for await (const sha of this.objects()) listed.add(sha);
    return (sha) => Promise.resolve(listed.has(sha));
  }

  async hash(sha256: string): Promise<string> {
    return this.call('GET', async () => {
      const res = await this.client.send(new this.sdk.GetObjectCommand({ Bucket: this.at.bucket, Key: this.key(sha256) }));
      const hash = createHash('sha256');
      for await (const chunk of res.Body as Readable) hash.update(chunk as Buffer);
      return hash.digest('hex');
    });
  }

  async quarantine(sha256: string, now: number): Promise<void> {
    const Bucket = this.at.bucket;
    const to = `${this.at.prefix ? `${this.at.prefix}/` : ''}.quarantine/${sha256}.pdf.${now}`;
    await this.call('quarantine copy', () => this.client.send(new this.sdk.CopyObjectCommand({ Bucket, Key: to, CopySource: encodeURI(`${Bucket}/${this.key(sha256)}`) })));
    await this.call('quarantine delete', () => this.client.send(new this.sdk.DeleteObjectCommand({ Bucket, Key: this.key(sha256) })));
  }

  localPath(): null {
    return null;
  }

  close(): void {
    this.client.destroy();
  }
}

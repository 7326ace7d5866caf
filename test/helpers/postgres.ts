import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';

pg.types.setTypeParser(pg.types.builtins.INT8, Number);

/** A new, empty database on the run's PostgreSQL server (postgres-server.ts): its URL. */
export async function freshDatabase(): Promise<string> {
  const server = inject('pgServer');
  const name = `t_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: `${server}/postgres` });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  return `${server}/${name}`;
}

/** Reads a PostgreSQL ledger as a user with psql would. */
export async function queryPg<T>(url: string, sql: string, ...params: unknown[]): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query(sql, params)).rows as T[];
  } finally {
    await c.end();
  }
}

/**
 * The PostgreSQL ledger's thread. The ledger interface is synchronous (the pipeline asks it between
 * two awaits, as it asks SQLite), so the main thread sends each call here and, for a call whose
 * answer it needs, waits on a shared counter (see bridge.ts). Calls run in the order they were
 * sent, on one connection: a read sees every write sent before it. Writes whose answer nobody
 * waits for are grouped into one transaction per run of them (the group commit's counterpart).
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import pg from 'pg';
import pRetry from 'p-retry';
import { jobsSql } from './jobs-sql.js';
import { readsSql } from './reads-sql.js';
import { rowsSql } from './rows-sql.js';
import { PG_MIGRATIONS } from './schema.js';
import type { Call, Failure, Reply, Write } from './bridge.js';

/** Writes grouped into one transaction at most. */
const BATCH_MAX = 256;
/** SQLSTATEs worth running again: serialization failure, deadlock, lock not available, too many connections, cannot connect now. */
const TRANSIENT = new Set(['40001', '40P01', '55P03', '53300', '57P03']);
/** Key of the advisory lock migrations run under (any constant shared by every process). */
const MIGRATION_LOCK = 7_386_214_051;

const HANDLERS: Record<string, (c: pg.ClientBase, arg: never) => Promise<unknown>> = { ...jobsSql, ...rowsSql, ...readsSql };

// Timestamps and sizes are BIGINT: milliseconds and bytes fit a double exactly.
pg.types.setTypeParser(pg.types.builtins.INT8, Number);

const { url, syncPort, signal } = workerData as { url: string; syncPort: MessagePort; signal: SharedArrayBuffer };
const counter = new Int32Array(signal);
const client = new pg.Client({ connectionString: url, application_name: 'docstokg' });
preparedStatements(client);
let broken: Failure | null = null;
const queue: Call[] = [];
let draining = false;

/**
 * Every statement with parameters is prepared once per connection (named by its text) and then
 * only bound and run: the same text parsed and planned again on every call took about half of
 * each round trip.
 */
function preparedStatements(c: pg.Client): void {
  const names = new Map<string, string>();
  const query = c.query.bind(c) as (config: pg.QueryConfig) => Promise<pg.QueryResult>;
  const named = (text: string, values: unknown[]): Promise<pg.QueryResult> => {
    let name = names.get(text);
    if (name === undefined) names.set(text, (name = `d${names.size}`));
    return query({ name, text, values });
  };
  c.query = ((text: unknown, values?: unknown) =>
    typeof text === 'string' && Array.isArray(values) ? named(text, values) : (query as (...a: unknown[]) => unknown)(text, values)) as typeof c.query;
}

function failure(err: unknown): Failure {
  const e = err as { message?: string; code?: string };
  return { message: e.message ?? String(err), code: e.code ?? null };
}

function transient(err: unknown): boolean {
  return TRANSIENT.has((err as { code?: string }).code ?? '');
}

/** Transient failures run again (a deadlock between two processes' groups, a busy server). */
function retried<T>(fn: () => Promise<T>): Promise<T> {
  return pRetry(fn, { retries: 6, minTimeout: 10, maxTimeout: 500, shouldRetry: ({ error }) => transient(error) });
}

async function inTransaction(fn: () => Promise<void>): Promise<void> {
  await client.query('BEGIN');
  try {
    await fn();
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

async function open(): Promise<void> {
  await retried(() => client.connect());
  await retried(() =>
    inTransaction(async () => {
      await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      await client.query('CREATE TABLE IF NOT EXISTS docstokg_schema (version INTEGER NOT NULL)');
      const version = (await client.query<{ version: number }>('SELECT version FROM docstokg_schema')).rows[0]?.version ?? 0;
      if (version > PG_MIGRATIONS.length) throw new Error(`ledger schema version ${version} is newer than this docstokg understands (${PG_MIGRATIONS.length})`);
      for (let v = version; v < PG_MIGRATIONS.length; v += 1) await client.query(PG_MIGRATIONS[v]!);
      await client.query('DELETE FROM docstokg_schema');
      await client.query('INSERT INTO docstokg_schema (version) VALUES ($1)', [PG_MIGRATIONS.length]);
    }),
  );
}

function handler(op: string): (c: pg.ClientBase, arg: never) => Promise<unknown> {
  const fn = HANDLERS[op];
  if (!fn) throw new Error(`unknown ledger call ${op}`);
  return fn;
}

function reply(r: Reply): void {
  syncPort.postMessage(r);
  Atomics.store(counter, 0, r.id);
  Atomics.notify(counter, 0);
}

/** A run of writes nobody waits for, at the head of the queue: one transaction. */
async function runWrites(): Promise<void> {
  let n = 0;
  while (n < queue.length && n < BATCH_MAX && queue[n]!.kind === 'write') n += 1;
  const batch = queue.splice(0, n);
  if (broken) return;
  try {
    const each = async (): Promise<void> => {
      for (const call of batch as Write[]) await handler(call.op)(client, call.arg as never);
    };
    await retried(() => (batch.length === 1 ? each() : inTransaction(each)));
  } catch (err) {
    broken = failure(err);
    parentPort!.postMessage({ failed: broken });
  }
}

async function runOne(call: Call): Promise<void> {
  if (call.kind === 'committed') {
    parentPort!.postMessage({ committed: call.id, failed: broken });
    return;
  }
  if (broken) return reply({ id: call.id, error: broken });
  try {
    // `flush` only has to come after the writes sent before it, which have run by now.
    const value =
      call.op === 'open' ? await open() : call.op === 'close' ? await client.end() : call.op === 'flush' ? null : await retried(() => handler(call.op)(client, call.arg as never));
    reply({ id: call.id, value });
  } catch (err) {
    const f = failure(err);
    // A lost connection, or a transient refusal that outlasted its retries, ends every later call
    // too (the run ends with exit 3); a statement's own error (a bug, a constraint) fails only its caller.
    if (call.op === 'open' || transient(err) || /connection|terminat|ECONN|EPIPE/i.test(f.message) || f.code?.startsWith('08') || f.code?.startsWith('57P')) broken = f;
    reply({ id: call.id, error: f, fatal: broken === f });
  }
}

async function drain(): Promise<void> {
  draining = true;
  while (queue.length > 0) {
    if (queue[0]!.kind === 'write') await runWrites();
    else await runOne(queue.shift()!);
  }
  draining = false;
}

client.on('error', (err) => {
  broken ??= failure(err);
  parentPort!.postMessage({ failed: broken });
});

parentPort!.on('message', (call: Call) => {
  queue.push(call);
  if (!draining) void drain();
});

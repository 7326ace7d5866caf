import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import { FatalError } from '../../errors.js';

export interface Failure {
  message: string;
  code: string | null;
}

/** `call`: answered through the shared counter; `write`: no answer; `committed`: acknowledged once every earlier call ran. */
export type Write = { id: number; kind: 'write'; op: string; arg: unknown };
export type Call = { id: number; kind: 'call'; op: string; arg: unknown } | Write | { id: number; kind: 'committed' };
/** `fatal`: the failure ends the ledger (every later call fails with it) */
export type Reply = { id: number; value?: unknown; error?: Failure; fatal?: boolean };
type Notice = { failed?: Failure | null; committed?: number };

/**
 * The built thread: beside this module once bundled or compiled; the sources under test use the
 * compiled one (the tests build first).
 */
function workerUrl(): URL {
  const beside = new URL('./pg-worker.js', import.meta.url);
  return existsSync(fileURLToPath(beside)) ? beside : new URL('../../../dist/ledger/postgres/pg-worker.js', import.meta.url);
}

/** A ledger URL with its password hidden, for messages (a file path as it is). */
export function redacted(url: string): string {
  if (!/^postgres(ql)?:\/\//.test(url)) return url;
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'the PostgreSQL ledger';
  }
}

/**
 * The main thread's side of the PostgreSQL ledger's thread (pg-worker.ts): `call` blocks until its
 * answer (Atomics.wait on a counter the thread advances), `write` returns at once, `committed`
 * resolves once everything sent before it has run. A failure of the connection is kept and every
 * later call throws it as a FatalError: the run ends, and its leases expire on their own.
 */
export class PgBridge {
  private readonly worker: Worker;
  private readonly port: MessagePort;
  private readonly counter = new Int32Array(new SharedArrayBuffer(4));
  private next = 0;
  private failed: Failure | null = null;
  /** writes sent since the last answered call (which ran after them) */
  private unanswered = 0;
  private readonly waiting = new Map<number, { resolve: () => void; reject: (err: Error) => void }>();

  constructor(private readonly url: string, private readonly timeoutMs: number) {
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.worker = new Worker(workerUrl(), { workerData: { url, syncPort: port2, signal: this.counter.buffer }, transferList: [port2] });
    this.worker.on('message', (n: Notice) => this.notice(n));
    this.worker.on('error', (err) => this.notice({ failed: { message: err.message, code: null } }));
    this.worker.unref();
    this.call('open', null);
  }

  call<T>(op: string, arg: unknown): T {
    this.check();
    const id = this.send({ id: 0, kind: 'call', op, arg });
    this.unanswered = 0;
    const deadline = Date.now() + this.timeoutMs;
    for (;;) {
      const seen = Atomics.load(this.counter, 0);
      if (seen >= id) break;
      const left = deadline - Date.now();
      if (left <= 0 || Atomics.wait(this.counter, 0, seen, left) === 'timed-out') {
        this.failed = { message: `no answer within --lock-timeout (${Math.round(this.timeoutMs / 1000)} s)`, code: null };
        this.check();
      }
    }
    const reply = receiveMessageOnPort(this.port)?.message as Reply | undefined;
    if (!reply || reply.id !== id) throw new FatalError(`ledger ${redacted(this.url)}: answers out of order`);
    if (reply.error) {
      if (op === 'open' || reply.fatal) this.failed = reply.error;
      throw this.error(reply.error, op);
    }
    return reply.value as T;
  }

  write(op: string, arg: unknown): void {
    this.check();
    this.send({ id: 0, kind: 'write', op, arg });
    this.unanswered += 1;
  }

  /** Returns once every write sent so far has run (at once when an answered call came after them). */
  flush(): void {
    if (this.unanswered > 0) this.call('flush', null);
  }

  committed(): Promise<void> {
    if (this.failed) return Promise.reject(this.error(this.failed));
    const id = this.send({ id: 0, kind: 'committed' });
    return new Promise((resolve, reject) => this.waiting.set(id, { resolve, reject }));
  }

  close(): void {
    if (!this.failed) {
      try {
        this.call('close', null);
      } catch {
        // closing a connection that failed: nothing is left to close
      }
    }
    void this.worker.terminate();
  }

  private send(call: Call): number {
    const id = ++this.next;
    this.worker.postMessage({ ...call, id });
    return id;
  }

  private notice(n: Notice): void {
    if (n.failed) this.failed ??= n.failed;
    if (n.committed === undefined) {
      // the connection failed: no acknowledgement will come
      for (const w of this.waiting.values()) w.reject(this.error(this.failed!));
      this.waiting.clear();
      return;
    }
    const w = this.waiting.get(n.committed);
    this.waiting.delete(n.committed);
    if (n.failed) w?.reject(this.error(n.failed));
    else w?.resolve();
  }

  private check(): void {
    if (this.failed) throw this.error(this.failed);
  }

  private error(f: Failure, op?: string): Error {
    const what = `ledger ${redacted(this.url)}${op === 'open' ? ' is unusable' : ''}: ${f.message}${f.code ? ` (${f.code})` : ''}`;
    return this.failed === f ? new FatalError(what) : new Error(what);
  }
}

import type { IncomingHttpHeaders } from 'node:http';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Dispatcher } from 'undici';
import { FatalError } from '../errors.js';
import { rebuildError, type FromThread, type ThreadOptions, type ToThread } from './thread-messages.js';

/** Where fetchInto sends a GET: the run's Agent on this thread, or the transfer threads. */
export interface Transport {
  /**
   * `deadline`: the lease's end as the caller knows it (ms since the epoch). A thread does not
   * write a request past it: the handler's onRequestStart, which checks the lease on this thread,
   * then decides whether it is asked again with a later deadline (the lease was renewed meanwhile).
   */
  dispatch(opts: Request, handler: Dispatcher.DispatchHandler, deadline: () => number): void;
}

type Request = { origin: string; path: string; headers: Record<string, string> };

/** The name of the error a thread answers with when a request's lease ran out before it was written. */
export const LEASE_EXPIRED = 'LeaseExpired';

/** The run's Agent as a Transport: the lease is checked at onRequestStart on this thread. */
export function agentTransport(agent: Dispatcher): Transport {
  return { dispatch: (opts, handler) => void agent.dispatch({ ...opts, method: 'GET' }, handler) };
}

const WORKER = new URL('./transfer-worker.js', import.meta.url);

/** Whether transfer threads can be started: a built worker beside this module (sources under test have none). */
export function threadsAvailable(): boolean {
  return existsSync(fileURLToPath(WORKER));
}

/**
 * The controller the main thread's handler sees for a request running on a thread: pause and
 * resume cross to the thread, and chunks that arrive while paused wait here, in order.
 */
class RemoteRequest implements Dispatcher.DispatchController {
  aborted = false;
  paused = false;
  reason: Error | null = null;
  /** the handler has seen onRequestStart */
  started = false;
  private readonly queued: Array<Buffer | 'end'> = [];

  constructor(
    readonly id: number,
    readonly thread: Thread,
    readonly handler: Dispatcher.DispatchHandler,
    readonly request: Request,
    readonly deadline: () => number,
  ) {}

  /** Hands the request to its thread (again, after a deadline that was too early). */
  send(): void {
    this.thread.requests.set(this.id, this);
    this.thread.send({ t: 'dispatch', id: this.id, ...this.request, deadline: this.deadline() });
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.handler.onRequestStart?.(this, {});
  }

  abort(reason: Error): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.thread.send({ t: 'abort', id: this.id, message: reason?.message ?? 'aborted' });
    this.thread.forget(this);
    this.queued.length = 0;
    this.handler.onResponseError?.(this, reason);
  }

  pause(): void {
    if (this.paused || this.aborted) return;
    this.paused = true;
    this.thread.send({ t: 'pause', id: this.id });
  }

  resume(): void {
    if (!this.paused || this.aborted) return;
    this.paused = false;
    // setImmediate: a sink calls resume from inside its own calls, never to be re-entered there.
    setImmediate(() => this.drain());
  }

  data(chunk: Buffer): void {
    if (this.paused || this.queued.length > 0) this.queued.push(chunk);
    else this.handler.onResponseData?.(this, chunk);
  }

  end(): void {
    if (this.paused || this.queued.length > 0) this.queued.push('end');
    else this.finish();
  }

  private drain(): void {
    while (!this.paused && !this.aborted && this.queued.length > 0) {
      const next = this.queued.shift()!;
      if (next === 'end') return this.finish();
      this.handler.onResponseData?.(this, next);
    }
    if (!this.paused && !this.aborted) this.thread.send({ t: 'resume', id: this.id });
  }

  private finish(): void {
    this.thread.forget(this);
    this.handler.onResponseEnd?.(this, {});
  }
}

class Thread {
  readonly worker: Worker;
  readonly requests = new Map<number, RemoteRequest>();

  constructor(options: ThreadOptions, worker: URL, onFailure: (err: Error) => void) {
    this.worker = new Worker(worker, { workerData: options });
    this.worker.on('message', (m: FromThread) => this.receive(m));
    this.worker.on('error', onFailure);
    this.worker.on('exit', (code) => onFailure(new FatalError(`a transfer thread ended early (exit ${code})`)));
    // A run's end does not wait for idle threads (close() ends them when asked).
    this.worker.unref();
  }

  send(m: ToThread): void {
    this.worker.postMessage(m);
  }

  forget(r: RemoteRequest): void {
    this.requests.delete(r.id);
  }

  private receive(m: FromThread): void {
    const r = this.requests.get(m.id);
    if (!r) return;
    switch (m.t) {
      case 'sent':
        return r.start();
      case 'headers':
        return r.handler.onResponseStart?.(r, m.status, m.headers as IncomingHttpHeaders, '');
      case 'data':
        return r.data(Buffer.from(m.body));
      case 'end':
        return r.end();
      case 'error': {
        this.forget(r);
        const err = rebuildError(m.error);
        if (err.name === LEASE_EXPIRED) {
          // Not written. The handler checks the lease as an Agent's would at the start: lost, it
          // fails the request; renewed since the dispatch, the request goes again.
          r.start();
          if (!r.aborted) r.send();
          return;
        }
        if (!r.aborted) r.handler.onResponseError?.(r, err);
      }
    }
  }
}

/**
 * Transfers on worker threads: each thread has its own Agent, so sockets, TLS and HTTP parsing
 * run on as many event loops, while this thread keeps the ledger, the scheduler, politeness and
 * every decision about a response. A request goes to the thread with the fewest in flight.
 */
export class ThreadedTransport implements Transport {
  private readonly threads: Thread[];
  private nextId = 1;
  private failure: Error | null = null;

  /** `worker`: the thread's module (tests, which run the sources, pass the built one) */
  constructor(count: number, options: ThreadOptions, worker: URL = WORKER) {
    const fail = (err: Error): void => {
      this.failure ??= err;
      for (const t of this.threads) for (const r of [...t.requests.values()]) r.abort(err);
    };
    this.threads = Array.from({ length: count }, () => new Thread(options, worker, fail));
  }

  dispatch(opts: Request, handler: Dispatcher.DispatchHandler, deadline: () => number): void {
    if (this.failure) throw this.failure;
    let thread = this.threads[0]!;
    for (const t of this.threads) if (t.requests.size < thread.requests.size) thread = t;
    new RemoteRequest(this.nextId++, thread, handler, opts, deadline).send();
  }

  async close(): Promise<void> {
    await Promise.all(
      this.threads.map((t) => {
        t.worker.removeAllListeners('exit');
        t.worker.removeAllListeners('error');
        return t.worker.terminate();
      }),
    );
  }
}

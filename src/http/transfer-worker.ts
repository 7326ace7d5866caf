import type { IncomingHttpHeaders } from 'node:http';
import { parentPort, workerData } from 'node:worker_threads';
import type { Dispatcher } from 'undici';
import { tuneForTransfers } from '../runtime-tuning.js';
import { createAgent } from './client.js';
import { privateRanges } from './url-policy.js';
import { flattenError, TRANSFER_BATCH_BYTES, type ToThread, type FromThread, type ThreadOptions } from './thread-messages.js';

/**
 * One transfer thread: its own undici Agent (sockets, TLS, HTTP parsing) for the requests the main
 * thread hands it. Each response goes back as messages: the send, the headers, the body in batches
 * (one copy, its memory transferred, never cloned) and the end or error. The main thread keeps
 * every decision; this thread only refuses to write a request whose lease has run out.
 */
const port = parentPort!;
const options = workerData as ThreadOptions;
const agent = createAgent({ ...options, blocked: options.denyPrivate ? privateRanges() : null, beforeFirstUse: tuneForTransfers });

/** A lease that ran out before its request could be written: the main thread decides what follows. */
class LeaseExpired extends Error {
  override name = 'LeaseExpired';
}

const requests = new Map<number, Relay>();
/** Relays with body bytes waiting to go: sent together once per turn of the event loop. */
const pending = new Set<Relay>();
let flushScheduled = false;

function post(m: FromThread, transfer?: ArrayBuffer[]): void {
  port.postMessage(m, transfer);
}

function flushAll(): void {
  flushScheduled = false;
  for (const r of pending) r.flush();
  pending.clear();
}

class Relay implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | null = null;
  private chunks: Buffer[] = [];
  private bytes = 0;
  private aborted: Error | null = null;

  constructor(
    private readonly id: number,
    private readonly deadline: number,
  ) {}

  abort(err: Error): void {
    this.aborted = err;
    if (this.controller && !this.controller.aborted) this.controller.abort(err);
  }

  pause(): void {
    this.controller?.pause();
  }

  resume(): void {
    this.controller?.resume();
  }

  flush(): void {
    if (this.bytes === 0) return;
    // Always a copy into memory of its own: undici's chunks are views of socket buffers it may
    // still read from, which a transfer would detach.
    const body = Buffer.allocUnsafeSlow(this.bytes);
    let at = 0;
    for (const c of this.chunks) at += c.copy(body, at);
    this.chunks = [];
    this.bytes = 0;
    post({ id: this.id, t: 'data', body: body.buffer }, [body.buffer]);
  }

  onRequestStart(c: Dispatcher.DispatchController): void {
    this.controller = c;
    if (this.aborted) return c.abort(this.aborted);
    // The lease was checked by the main thread when it dispatched; a request that waited past its
    // end (a process stopped while connecting) is not written.
    if (Date.now() > this.deadline) return c.abort(new LeaseExpired('lease ran out before the request was written'));
    post({ id: this.id, t: 'sent' });
  }

  onResponseStart(_c: Dispatcher.DispatchController, status: number, headers: IncomingHttpHeaders): void {
    if (status < 200) return;
    post({ id: this.id, t: 'headers', status, headers });
  }

  onResponseData(_c: Dispatcher.DispatchController, chunk: Buffer): void {
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    if (this.bytes >= TRANSFER_BATCH_BYTES) {
      pending.delete(this);
      this.flush();
      return;
    }
    pending.add(this);
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flushAll);
    }
  }

  onResponseEnd(): void {
    pending.delete(this);
    this.flush();
    requests.delete(this.id);
    post({ id: this.id, t: 'end' });
  }

  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    pending.delete(this);
    // Bytes received before the error are the part's to keep, for a resume.
    this.flush();
    requests.delete(this.id);
    post({ id: this.id, t: 'error', error: flattenError(err) });
  }
}

port.on('message', (m: ToThread) => {
  if (m.t === 'dispatch') {
    const relay = new Relay(m.id, m.deadline);
    requests.set(m.id, relay);
    void agent.then((a) => {
      try {
        a.dispatch({ origin: m.origin, path: m.path, method: 'GET', headers: m.headers }, relay);
      } catch (err) {
        requests.delete(m.id);
        post({ id: m.id, t: 'error', error: flattenError(err as Error) });
      }
    });
    return;
  }
  const relay = requests.get(m.id);
  if (!relay) return;
  if (m.t === 'abort') relay.abort(Object.assign(new Error(m.message), { name: 'AbortError' }));
  else if (m.t === 'pause') relay.pause();
  else relay.resume();
});

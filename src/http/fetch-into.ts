import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';

/** Where a response body goes, chunk by chunk, the moment undici has parsed it. */
export interface BodySink {
  /**
   * Takes a chunk. False asks for the connection to pause: the sink then calls `resume` once it
   * can take more (never before this call returns). Throws to fail the response.
   */
  accept(chunk: Buffer, resume: () => void): boolean;
  /** The whole body arrived: final checks and flushing. Releases the sink whether it resolves or rejects. */
  end(): Promise<void>;
  /** The response failed before its end: releases the sink. Never rejects. */
  abort(err: Error): Promise<void>;
}

/**
 * Picks the sink for a response from its status and headers (throws to refuse it). `fail` ends
 * the response from outside a sink's own calls, such as a decoder erring on its own schedule.
 */
export type OpenSink = (status: number, headers: IncomingHttpHeaders, fail: (err: Error) => void) => BodySink;

/**
 * One GET through undici's dispatcher with the body fed straight into a sink. Resolves once the sink
 * has ended; rejects with the first error (the connection's, the sink's, or the signal's reason)
 * once the sink is released. This is the hot path of every transfer: one handler object per
 * request and one call per chunk, with no stream, async resource or promise per chunk in between.
 */
export function fetchInto(dispatcher: Dispatcher, target: URL, headers: Record<string, string>, signal: AbortSignal, open: OpenSink, onSent?: () => void): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason as Error);
    const handler = new SinkHandler(signal, open, onSent, resolve, reject);
    try {
      dispatcher.dispatch({ origin: target.origin, path: target.pathname + target.search, method: 'GET', headers }, handler);
    } catch (err) {
      handler.fail(err as Error);
    }
  });
}

/** The dispatch handler of one request: undici's callbacks, forwarded to the response's sink. */
class SinkHandler implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | null = null;
  private sink: BodySink | null = null;
  /** set once the outcome is decided: later calls from undici or the sink change nothing */
  private failure: Error | null = null;
  private done = false;
  private readonly onAbort = (): void => this.fail(this.signal.reason as Error);
  private readonly resume = (): void => {
    if (!this.done) this.controller?.resume();
  };

  constructor(
    private readonly signal: AbortSignal,
    private readonly open: OpenSink,
    private readonly onSent: (() => void) | undefined,
    private readonly resolve: () => void,
    private readonly reject: (err: Error) => void,
  ) {
    signal.addEventListener('abort', this.onAbort, { once: true });
  }

  readonly fail = (err: Error): void => {
    if (this.done) return;
    this.settle();
    this.failure = err;
    // Before the request has a connection there is no controller yet: onRequestStart aborts it.
    if (this.controller && !this.controller.aborted) this.controller.abort(err);
    const s = this.sink;
    this.sink = null;
    if (s) void s.abort(err).then(() => this.reject(err));
    else this.reject(err);
  };

  private settle(): void {
    this.done = true;
    this.signal.removeEventListener('abort', this.onAbort);
  }

  // undici calls this as it writes the request to a connected socket: the moment it leaves.
  // `onSent` may refuse it (by throwing): the request is then never written.
  onRequestStart(c: Dispatcher.DispatchController): void {
    this.controller = c;
    if (this.failure) {
      c.abort(this.failure);
      return;
    }
    try {
      this.onSent?.();
    } catch (err) {
      this.fail(err as Error);
    }
  }

  onResponseStart(_c: Dispatcher.DispatchController, status: number, responseHeaders: IncomingHttpHeaders): void {
    // 1xx answers are informational: the real one follows.
    if (this.done || status < 200) return;
    try {
      this.sink = this.open(status, responseHeaders, this.fail);
    } catch (err) {
      this.fail(err as Error);
    }
  }

  onResponseData(c: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.sink === null) return;
    try {
      if (!this.sink.accept(chunk, this.resume)) c.pause();
    } catch (err) {
      this.fail(err as Error);
    }
  }

  onResponseEnd(): void {
    if (this.done) return;
    this.settle();
    const s = this.sink;
    this.sink = null;
    if (s) s.end().then(this.resolve, this.reject);
    else this.resolve();
  }

  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    this.fail(err);
  }
}

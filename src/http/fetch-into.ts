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
    let controller: Dispatcher.DispatchController | null = null;
    let sink: BodySink | null = null;
    /** set once the outcome is decided: later calls from undici or the sink change nothing */
    let failure: Error | null = null;
    let done = false;
    const settle = (): void => {
      done = true;
      signal.removeEventListener('abort', onAbort);
    };
    const fail = (err: Error): void => {
      if (done) return;
      settle();
      failure = err;
      // Before the request has a connection there is no controller yet: onRequestStart aborts it.
      if (controller && !controller.aborted) controller.abort(err);
      const s = sink;
      sink = null;
      if (s) void s.abort(err).then(() => reject(err));
      else reject(err);
    };
    const onAbort = (): void => fail(signal.reason as Error);
    const resume = (): void => {
      if (!done) controller?.resume();
    };
    signal.addEventListener('abort', onAbort, { once: true });
    const handler: Dispatcher.DispatchHandler = {
      // undici calls this as it writes the request to a connected socket: the moment it leaves.
      onRequestStart(c) {
        controller = c;
        if (failure) c.abort(failure);
        else onSent?.();
      },
      onResponseStart(_c, status, responseHeaders) {
        // 1xx answers are informational: the real one follows.
        if (done || status < 200) return;
        try {
          sink = open(status, responseHeaders, fail);
        } catch (err) {
          fail(err as Error);
        }
      },
      onResponseData(c, chunk) {
        if (sink === null) return;
        try {
          if (!sink.accept(chunk, resume)) c.pause();
        } catch (err) {
          fail(err as Error);
        }
      },
      onResponseEnd() {
        if (done) return;
        settle();
        const s = sink;
        sink = null;
        if (s) s.end().then(resolve, reject);
        else resolve();
      },
      onResponseError(_c, err) {
        fail(err);
      },
    };
    try {
      dispatcher.dispatch({ origin: target.origin, path: target.pathname + target.search, method: 'GET', headers }, handler);
    } catch (err) {
      fail(err as Error);
    }
  });
}

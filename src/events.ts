/**
 * The run's event stream. The core emits facts (an item finished, a breaker opened, a lease was
 * lost); sinks listen: the JSON log on stderr, the metrics file. With no sink, emit costs a check.
 */
export type EventFields = Record<string, unknown>;
export type Sink = (event: string, fields: EventFields, at: number) => void;

export class Events {
  private readonly sinks: Sink[] = [];

  on(sink: Sink): void {
    this.sinks.push(sink);
  }

  get active(): boolean {
    return this.sinks.length > 0;
  }

  emit(event: string, fields: EventFields = {}): void {
    if (this.sinks.length === 0) return;
    const at = Date.now();
    for (const sink of this.sinks) sink(event, fields, at);
  }
}

const FLUSH_AT = 16 * 1024;

/** `--log-format json`: one object per line on stderr, each with its time and the run id. */
export function jsonLog(runId: string, stream: NodeJS.WritableStream = process.stderr): { sink: Sink; flush: () => void } {
  let buf = '';
  let timer: NodeJS.Timeout | null = null;
  const flush = (): void => {
    if (timer) clearTimeout(timer);
    timer = null;
    if (buf) stream.write(buf);
    buf = '';
  };
  const sink: Sink = (event, fields, at) => {
    buf += `${JSON.stringify({ ts: new Date(at).toISOString(), run_id: runId, event, ...fields })}\n`;
    if (buf.length >= FLUSH_AT) flush();
    else if (!timer) {
      timer = setTimeout(flush, 100);
      timer.unref();
    }
  };
  return { sink, flush };
}

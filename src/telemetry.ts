import { Events, jsonLog } from './events.js';
import { Metrics } from './metrics.js';

export const METRICS_EVERY_MS = 15_000;

/** Wires the sinks a command asked for to one event stream; `close` writes the last of them. */
/** A run's event stream and the sinks listening to it. */
export interface Telemetry {
  events: Events;
  close: () => Promise<void>;
}

export function startTelemetry(opts: { logFormat: 'text' | 'json'; metricsFile?: string | undefined }, runId: string): Telemetry {
  const events = new Events();
  const log = opts.logFormat === 'json' ? jsonLog(runId) : null;
  if (log) events.on(log.sink);
  let metrics: Metrics | null = null;
  let timer: NodeJS.Timeout | null = null;
  let writing: Promise<void> = Promise.resolve();
  if (opts.metricsFile) {
    const file = opts.metricsFile;
    const m = new Metrics(runId);
    metrics = m;
    events.on(m.sink);
    const write = (): void => {
      writing = writing.then(() => m.write(file)).catch((err: Error) => {
        process.stderr.write(`docstokg: cannot write --metrics-file ${file}: ${err.message}\n`);
      });
    };
    write();
    timer = setInterval(write, METRICS_EVERY_MS);
    timer.unref();
  }
  return {
    events,
    close: async () => {
      if (timer) clearInterval(timer);
      if (metrics && opts.metricsFile) {
        await writing;
        await metrics.write(opts.metricsFile);
      }
      log?.flush();
    },
  };
}

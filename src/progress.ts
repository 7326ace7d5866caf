import cliProgress from 'cli-progress';

export interface ProgressState {
  planned: number;
  finished: number;
  failed: number;
  bytes: number;
  startedAt: number;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

/** Human progress on stderr: a bar on a TTY, a plain line every few seconds otherwise. */
export interface Progress {
  update(state: ProgressState, now: number): void;
  stop(): void;
}

export function createProgress(stream: NodeJS.WriteStream, enabled: boolean): Progress {
  if (!enabled) return { update() {}, stop() {} };
  if (stream.isTTY) return barProgress(stream);
  return lineProgress(stream);
}

function rate(state: ProgressState, now: number): number {
  return state.bytes / Math.max(0.001, (now - state.startedAt) / 1000);
}

function barProgress(stream: NodeJS.WriteStream): Progress {
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format: '{bar} {value}/{total} items | {size} | {speed}/s | ETA {eta_formatted} | failed {failed}',
      hideCursor: true,
      etaBuffer: 200,
      fps: 5,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  let lastFinished = 0;
  return {
    update(s, now) {
      lastFinished = s.finished;
      const payload = { size: formatBytes(s.bytes), speed: formatBytes(rate(s, now)), failed: s.failed };
      if (!started) {
        bar.start(s.planned, s.finished, payload);
        started = true;
      }
      bar.setTotal(Math.max(s.planned, 1));
      bar.update(s.finished, payload);
    },
    stop() {
      if (!started) return;
      bar.update(lastFinished);
      bar.stop();
    },
  };
}

const LINE_EVERY_MS = 5000;

function lineProgress(stream: NodeJS.WriteStream): Progress {
  let last = 0;
  return {
    update(s, now) {
      if (now - last < LINE_EVERY_MS) return;
      last = now;
      stream.write(`docstokg: ${s.finished}/${s.planned} items, ${s.failed} failed, ${formatBytes(s.bytes)}, ${formatBytes(rate(s, now))}/s\n`);
    },
    stop() {},
  };
}

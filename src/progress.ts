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
  /** a line of text (a -v record) shown above the bar, or written as it is without one */
  log(line: string): void;
  /** the last frame is cleared: the summary that follows is the run's final word */
  stop(): void;
}

export function createProgress(stream: NodeJS.WriteStream, enabled: boolean): Progress {
  if (!enabled) return { update() {}, log: (line) => void stream.write(line), stop() {} };
  if (stream.isTTY) return barProgress(stream);
  return lineProgress(stream);
}

function rate(state: ProgressState, now: number): number {
  return state.bytes / Math.max(0.001, (now - state.startedAt) / 1000);
}

/** Time left at the average pace so far; unknown ('--') until an item has finished. */
export function formatEta(state: ProgressState, now: number): string {
  const left = state.planned - state.finished;
  if (left <= 0) return '0s';
  const elapsed = (now - state.startedAt) / 1000;
  if (state.finished === 0 || elapsed <= 0) return '--';
  const secs = Math.ceil((left * elapsed) / state.finished);
  if (secs < 60) return `${secs}s`;
  if (secs < 3600) return `${Math.floor(secs / 60)}m${String(secs % 60).padStart(2, '0')}s`;
  return `${Math.floor(secs / 3600)}h${String(Math.floor(secs / 60) % 60).padStart(2, '0')}m`;
}

function barProgress(stream: NodeJS.WriteStream): Progress {
  const bars = new cliProgress.MultiBar(
    {
      stream,
      format: '{bar} {value}/{total} items | {size} | {speed}/s | ETA {left} | failed {failed}',
      hideCursor: true,
      clearOnComplete: true,
      gracefulExit: false,
      fps: 5,
    },
    cliProgress.Presets.shades_classic,
  );
  let bar: cliProgress.SingleBar | null = null;
  return {
    update(s, now) {
      const payload = { size: formatBytes(s.bytes), speed: formatBytes(rate(s, now)), failed: s.failed, left: formatEta(s, now) };
      bar ??= bars.create(Math.max(s.planned, 1), s.finished, payload);
      bar.setTotal(Math.max(s.planned, 1));
      bar.update(s.finished, payload);
    },
    log(line) {
      if (bar) bars.log(line);
      else stream.write(line);
    },
    stop() {
      if (!bar) return;
      // One last render writes out the lines logged since the previous frame.
      bars.update();
      bars.stop();
      bar = null;
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
      stream.write(`docstokg: ${s.finished}/${s.planned} items, ${s.failed} failed, ${formatBytes(s.bytes)}, ${formatBytes(rate(s, now))}/s, ETA ${formatEta(s, now)}\n`);
    },
    log: (line) => void stream.write(line),
    stop() {},
  };
}

import type { DownloadOptions } from './config.js';
import { Events } from './events.js';
import { createProgress, formatBytes, type Progress, type ProgressState } from './progress.js';
import type { DownloadRecord } from './record.js';

const FLUSH_AT = 64 * 1024;

/**
 * Where records go: NDJSON on stdout with --json (buffered, honouring pipe back-pressure and a
 * closed pipe), counts for the summary and the exit code, and the progress display.
 */
export class Reporter {
  readonly counts: Record<string, number> = {};
  readonly reasons: Record<string, number> = {};
  duplicates = 0;
  heldElsewhere = 0;
  private buf = '';
  private stdoutClosed = false;
  private drainWait: Promise<void> | null = null;
  private flushQueued = false;
  private readonly progress: Progress;
  private readonly state: ProgressState;
  private ticker: NodeJS.Timeout | null = null;

  constructor(
    private readonly opts: Pick<DownloadOptions, 'json' | 'quiet' | 'verbose' | 'progress'>,
    private readonly now: () => number,
    private readonly events: Events = new Events(),
  ) {
    this.state = { planned: 0, finished: 0, failed: 0, bytes: 0, startedAt: now() };
    this.progress = createProgress(process.stderr, opts.progress && !opts.quiet && !opts.verbose);
    process.stdout.on('error', (err: NodeJS.ErrnoException) => {
      // A reader that went away (`| head`) is not a failure of the run.
      if (err.code === 'EPIPE') this.stdoutClosed = true;
      else throw err;
    });
    this.ticker = setInterval(() => this.progress.update(this.state, this.now()), 1000);
    this.ticker.unref();
  }

  planned(n = 1): void {
    this.state.planned += n;
  }

  record(r: DownloadRecord): void {
    if (this.events.active) {
      this.events.emit(r.status === 'failed' || r.status === 'invalid' ? 'item_failed' : 'item_done', {
        id: r.id, status: r.status, reason: r.reason, url: r.url, http_status: r.http_status, bytes: r.bytes, sha256: r.sha256,
        path: r.path, attempts: r.attempts, elapsed_ms: r.elapsed_ms, source: r.source,
      });
    }
    this.counts[r.status] = (this.counts[r.status] ?? 0) + 1;
    if (r.reason) this.reasons[r.reason] = (this.reasons[r.reason] ?? 0) + 1;
    this.state.finished += 1;
    if (r.status === 'failed' || r.status === 'invalid') this.state.failed += 1;
    if (r.status === 'downloaded' || r.status === 'deduped') this.state.bytes += r.bytes ?? 0;
    if (this.opts.json) this.line(JSON.stringify(r));
    if (this.opts.verbose && !this.opts.quiet) {
      process.stderr.write(`${r.status}${r.reason ? ` (${r.reason})` : ''} ${r.id ?? r.source} ${r.path ?? ''}\n`);
    }
  }

  /** A `skipped` record whose JSON the ledger built (no events, no verbose line wanted). */
  skipped(json: string): void {
    this.counts.skipped = (this.counts.skipped ?? 0) + 1;
    this.state.finished += 1;
    if (this.opts.json) this.line(json);
  }

  private line(json: string): void {
    if (this.stdoutClosed) return;
    this.buf += `${json}\n`;
    if (this.buf.length >= FLUSH_AT) this.flush();
    else if (!this.flushQueued) {
      // Written once the loop has nothing else to do this turn: a burst of records (a re-run's
      // skipped lines) becomes one write, and a lone record still shows up at once.
      this.flushQueued = true;
      setImmediate(() => {
        this.flushQueued = false;
        this.flush();
      });
    }
  }

  /** A promise while stdout cannot take more (callers await it, so a slow reader slows planning). */
  writable(): Promise<void> | undefined {
    return this.drainWait ?? undefined;
  }

  flush(): void {
    if (this.buf === '' || this.stdoutClosed) return;
    const ok = process.stdout.write(this.buf);
    this.buf = '';
    if (!ok && !this.drainWait) {
      this.drainWait = new Promise((resolve) =>
        process.stdout.once('drain', () => {
          this.drainWait = null;
          resolve();
        }),
      );
    }
  }

  exitCode(): 0 | 1 {
    return (this.counts.failed ?? 0) + (this.counts.invalid ?? 0) > 0 ? 1 : 0;
  }

  summaryCounts(): Record<string, number> {
    return { ...this.counts, duplicates: this.duplicates, held_elsewhere: this.heldElsewhere, bytes: this.state.bytes };
  }

  async finish(): Promise<void> {
    if (this.ticker) clearInterval(this.ticker);
    this.progress.stop();
    this.flush();
    await this.writable();
    if (this.opts.quiet) return;
    const secs = (this.now() - this.state.startedAt) / 1000;
    const parts = Object.entries(this.counts).map(([k, v]) => `${v} ${k}`);
    if (this.duplicates) parts.push(`${this.duplicates} duplicate lines`);
    if (this.heldElsewhere) parts.push(`${this.heldElsewhere} held by another process`);
    const reasons = Object.entries(this.reasons).map(([k, v]) => `${k}=${v}`).join(' ');
    process.stderr.write(
      `docstokg: ${parts.join(', ') || 'nothing to do'}; ${formatBytes(this.state.bytes)} in ${secs.toFixed(1)} s` +
        `${reasons ? `; reasons: ${reasons}` : ''}\n`,
    );
  }
}

import type { DownloadOptions } from './config.js';
import { Events } from './events.js';
import { createProgress, formatBytes, type Progress, type ProgressState } from './progress.js';
import type { DownloadRecord } from './record.js';
import { stdoutDrained } from './stdout.js';

const FLUSH_AT = 64 * 1024;

/** Failed items listed by name at the end of a human run; the rest are counted. */
const LISTED_FAILURES = 20;

/** How a run ended early, for the summary. */
export interface Interruption {
  signal: NodeJS.Signals;
  /** the manifests were not read to their end */
  unread: boolean;
}

/**
 * Where records go: NDJSON on stdout with --json (buffered, honouring pipe back-pressure and a
 * closed pipe), counts for the summary and the exit code, and the progress display.
 */
export class Reporter {
  readonly counts: Record<string, number> = {};
  readonly reasons: Record<string, number> = {};
  duplicates = 0;
  heldElsewhere = 0;
  /** failed items this run asked for, and invalid lines not seen by an earlier run: exit 1 */
  private fresh = 0;
  /** failed items of earlier runs not asked again */
  private known = 0;
  private readonly failures: DownloadRecord[] = [];
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
    this.progress = createProgress(process.stderr, opts.progress && !opts.quiet);
    this.ticker = setInterval(() => this.progress.update(this.state, this.now()), 1000);
    this.ticker.unref();
  }

  /** stdout's reader went away (`| head`): records are dropped from now on, the run goes on. */
  get closed(): boolean {
    return this.stdoutClosed;
  }

  set closed(value: boolean) {
    this.stdoutClosed = value;
    if (value) {
      this.buf = '';
      this.drainWait = null;
    }
  }

  planned(n = 1): void {
    this.state.planned += n;
  }

  /** `known`: an invalid line an earlier run already reported (it does not make the exit code 1). */
  record(r: DownloadRecord, known = false): void {
    if (this.events.active) {
      this.events.emit(r.status === 'failed' || r.status === 'invalid' ? 'item_failed' : 'item_done', {
        id: r.id, status: r.status, reason: r.reason, url: r.url, http_status: r.http_status, bytes: r.bytes, sha256: r.sha256,
        path: r.path, attempts: r.attempts, elapsed_ms: r.elapsed_ms, source: r.source,
      });
    }
    // An item cut short by the end of the run is not a failure: the next run continues it.
    const stopped = r.reason === 'interrupted';
    const key = stopped ? 'interrupted' : r.status;
    this.counts[key] = (this.counts[key] ?? 0) + 1;
    if (r.reason && !stopped) this.reasons[r.reason] = (this.reasons[r.reason] ?? 0) + 1;
    this.state.finished += 1;
    if ((r.status === 'failed' || r.status === 'invalid') && !stopped) this.failed(r, known || r.attempted === false);
    if (r.status === 'downloaded' || r.status === 'deduped') this.state.bytes += r.bytes ?? 0;
    if (this.opts.json) this.line(JSON.stringify(r));
    if (this.opts.verbose && !this.opts.quiet) {
      this.progress.log(`${r.status}${r.reason ? ` (${r.reason})` : ''} ${r.id ?? r.source} ${r.path ?? r.message ?? ''}\n`);
    }
  }

  private failed(r: DownloadRecord, known: boolean): void {
    this.state.failed += 1;
    if (known) {
      if (r.status === 'failed') this.known += 1;
      return;
    }
    this.fresh += 1;
    if (this.failures.length < LISTED_FAILURES) this.failures.push(r);
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
      const wait: Promise<void> = stdoutDrained().then(() => {
        if (this.drainWait === wait) this.drainWait = null;
      });
      this.drainWait = wait;
    }
  }

  exitCode(): 0 | 1 {
    return this.fresh > 0 ? 1 : 0;
  }

  summaryCounts(): Record<string, number> {
    return { ...this.counts, duplicates: this.duplicates, held_elsewhere: this.heldElsewhere, bytes: this.state.bytes };
  }

  async finish(interrupted: Interruption | null = null): Promise<void> {
    if (this.ticker) clearInterval(this.ticker);
    this.progress.stop();
    this.flush();
    await this.writable();
    if (this.opts.quiet) return;
    process.stderr.write(this.summary(interrupted));
  }

  private summary(interrupted: Interruption | null): string {
    const secs = (this.now() - this.state.startedAt) / 1000;
    const parts = Object.entries(this.counts).map(([k, v]) => `${v} ${k}`);
    if (this.duplicates) parts.push(`${this.duplicates} duplicate lines`);
    if (this.heldElsewhere) parts.push(`${this.heldElsewhere} held by another process`);
    const reasons = Object.entries(this.reasons).map(([k, v]) => `${k}=${v}`).join(' ');
    const lines: string[] = [];
    if (!this.opts.json && this.failures.length > 0) {
      lines.push('docstokg: failed:');
      for (const f of this.failures) lines.push(`  ${f.id ?? f.source}  ${f.reason}  ${f.url ?? f.message ?? ''}`);
      const more = this.fresh - this.failures.length;
      if (more > 0) lines.push(`  … and ${more} more (docstokg export | jq 'select(.status == "failed")' lists them all)`);
    }
    lines.push(
      `docstokg: ${parts.join(', ') || 'nothing to do'}; ${formatBytes(this.state.bytes)} in ${secs.toFixed(1)} s` + `${reasons ? `; reasons: ${reasons}` : ''}`,
    );
    if (this.known > 0) lines.push(`docstokg: ${this.known} failed in an earlier run and ${this.known === 1 ? 'was' : 'were'} not asked again (--retry-failed asks again)`);
    if (interrupted) {
      const left = this.state.planned - this.state.finished + (this.counts.interrupted ?? 0);
      const rest = interrupted.unread ? ' and the rest of the manifest' : '';
      lines.push(`docstokg: interrupted by ${interrupted.signal}: ${left} item${left === 1 ? '' : 's'}${rest} not finished (parts are kept); run the same command again to continue`);
    }
    return `${lines.join('\n')}\n`;
  }
}

import { rename, writeFile } from 'node:fs/promises';
import type { EventFields, Sink } from './events.js';

/**
 * `--metrics-file`: counters built from the event stream, written in the Prometheus text format
 * (the node_exporter textfile collector reads it) to a temporary file renamed over the target, so
 * a scrape never sees half a file.
 */
interface Family {
  help: string;
  type: 'counter' | 'gauge';
  samples: Map<string, number>;
}

function labelText(labels: Record<string, string>): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

export class Metrics {
  private readonly families = new Map<string, Family>();
  private readonly startedAt = Date.now();

  constructor(private readonly runId: string) {
    this.define('docstokg_items_total', 'counter', 'Manifest items finished, by status and reason.');
    this.define('docstokg_bytes_total', 'counter', 'Bytes of PDFs stored or deduplicated.');
    this.define('docstokg_requests_total', 'counter', 'HTTP requests by host and status class (error: no response).');
    this.define('docstokg_retries_total', 'counter', 'Retries scheduled, by cause.');
    this.define('docstokg_breaker_transitions_total', 'counter', 'Circuit breaker state changes, by host and new state.');
    this.define('docstokg_rate_limit_wait_seconds_total', 'counter', 'Time requests waited for a host rate window.');
    this.define('docstokg_resumed_bytes_saved_total', 'counter', 'Bytes not fetched again thanks to resumed parts.');
    this.define('docstokg_run_duration_seconds', 'gauge', 'Seconds since this run started.');
    this.define('docstokg_run_start_time_seconds', 'gauge', 'Unix time this run started.');
  }

  private define(name: string, type: Family['type'], help: string): void {
    this.families.set(name, { help, type, samples: new Map() });
  }

  add(name: string, labels: Record<string, string>, value: number): void {
    const f = this.families.get(name)!;
    const key = labelText(labels);
    f.samples.set(key, (f.samples.get(key) ?? 0) + value);
  }

  readonly sink: Sink = (event: string, fields: EventFields) => {
    const s = (k: string): string => String(fields[k] ?? '');
    switch (event) {
      case 'item_done':
      case 'item_failed':
        this.add('docstokg_items_total', { status: s('status'), reason: s('reason') }, 1);
        if (typeof fields.bytes === 'number' && (fields.status === 'downloaded' || fields.status === 'deduped')) this.add('docstokg_bytes_total', {}, fields.bytes);
        break;
      case 'request':
        this.add('docstokg_requests_total', { host: s('host'), class: typeof fields.status === 'number' ? `${String(fields.status)[0]}xx` : 'error' }, 1);
        break;
      case 'retry_scheduled':
        this.add('docstokg_retries_total', { cause: s('cause') }, 1);
        break;
      case 'breaker':
        this.add('docstokg_breaker_transitions_total', { host: s('host'), state: s('state') }, 1);
        break;
      case 'rate_limit_wait':
        this.add('docstokg_rate_limit_wait_seconds_total', {}, Number(fields.wait_ms ?? 0) / 1000);
        break;
      case 'resume_decision':
        if (Number(fields.resume_from) > 0) this.add('docstokg_resumed_bytes_saved_total', {}, Number(fields.resume_from));
        break;
    }
  };

  render(now = Date.now()): string {
    this.families.get('docstokg_run_duration_seconds')!.samples.set('', (now - this.startedAt) / 1000);
    this.families.get('docstokg_run_start_time_seconds')!.samples.set('', Math.floor(this.startedAt / 1000));
    let out = '';
    for (const [name, f] of this.families) {
      out += `# HELP ${name} ${f.help}\n# TYPE ${name} ${f.type}\n`;
      if (f.samples.size === 0 && f.type === 'counter') out += `${name} 0\n`;
      for (const [labels, v] of f.samples) out += `${name}${labels} ${Number.isInteger(v) ? v : v.toFixed(3)}\n`;
    }
    return out;
  }

  async write(path: string): Promise<void> {
    const tmp = `${path}.${this.runId}.tmp`;
    await writeFile(tmp, this.render());
    await rename(tmp, path);
  }
}

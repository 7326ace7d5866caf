import type { ExportOptions } from '../config.js';
import { RECORD_FIELDS, recordFromRow, type DownloadRecord } from '../record.js';
import { openExisting } from './status.js';

function csvCell(v: unknown): string {
  if (v === null || v === undefined) return '';
  const s = String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** Every job's latest result, one record per line; jobs never finished show status `pending`. */
export const ATTEMPT_FIELDS = [
  'id', 'item_id', 'job_key', 'run_id', 'url', 'final_url', 'http_status', 'bytes', 'elapsed_ms', 'throughput_bps', 'error',
  'resume_from', 'resume_decision', 'fsync_ms', 'dedup', 'path', 'sha256', 'started_at',
] as const;

function* itemRows(ledger: ReturnType<typeof openExisting>): Generator<Record<string, unknown>> {
  for (const row of ledger.jobs()) {
    const rec: DownloadRecord & { state: string } = { ...recordFromRow(row, { status: row.status ?? 'failed' }), state: row.state };
    if (!row.status) rec.status = row.state as DownloadRecord['status'];
    yield rec as unknown as Record<string, unknown>;
  }
}

export async function runExport(opts: ExportOptions): Promise<number> {
  const ledger = openExisting(opts);
  const out = process.stdout;
  const fields: readonly string[] = opts.attempts ? ATTEMPT_FIELDS : [...RECORD_FIELDS, 'state'];
  let buf = opts.format === 'csv' ? `${fields.join(',')}\n` : '';
  for (const rec of opts.attempts ? ledger.attempts() : itemRows(ledger)) {
    buf += opts.format === 'csv' ? `${fields.map((f) => csvCell(rec[f])).join(',')}\n` : `${JSON.stringify(rec)}\n`;
    if (buf.length > 64 * 1024) {
      if (!out.write(buf)) await new Promise((r) => out.once('drain', r));
      buf = '';
    }
  }
  out.write(buf);
  ledger.close();
  return 0;
}

import type { ExportOptions } from '../config.js';
import { openExisting } from '../ledger/locate.js';
import type { Ledger } from '../ledger/types.js';
import { invalidRecord, RECORD_FIELDS, recordFromRow } from '../record.js';
import { EXIT_PIPE, writeOut } from '../stdout.js';

function csvCell(v: unknown): string {
  if (v === null || v === undefined) return '';
  const s = String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** One row per item: the record's fields, then the job's state and a failure's message. */
export const ITEM_FIELDS = [...RECORD_FIELDS, 'state', 'message'] as const;

/** One row per HTTP attempt, in this order in JSONL and CSV alike; times are ISO 8601. */
export const ATTEMPT_FIELDS = [
  'id', 'item_id', 'job_key', 'run_id', 'url', 'final_url', 'http_status', 'bytes', 'elapsed_ms', 'throughput_bps', 'error',
  'resume_from', 'resume_decision', 'fsync_ms', 'dedup', 'path', 'sha256', 'started_at',
] as const;

/** Every job's latest result (jobs never finished show status `pending`), then the invalid lines. */
function* itemRows(ledger: Ledger): Generator<Record<string, unknown>> {
  for (const row of ledger.queries.jobs()) {
    const rec: Record<string, unknown> = { ...recordFromRow(row, { status: row.status ?? (row.state as 'failed') }), state: row.state, message: null };
    if (row.state === 'failed') rec.message = row.message;
    yield rec;
  }
  for (const line of ledger.queries.invalidLines()) {
    yield { ...invalidRecord(line.source, 'invalid_line', line.message), state: 'invalid' };
  }
}

function* attemptRows(ledger: Ledger): Generator<Record<string, unknown>> {
  for (const a of ledger.queries.attempts()) yield { ...a, started_at: new Date(a.started_at as number).toISOString() };
}

export async function runExport(opts: ExportOptions): Promise<number> {
  const ledger = openExisting(opts);
  try {
    const fields: readonly string[] = opts.attempts ? ATTEMPT_FIELDS : ITEM_FIELDS;
    const line = opts.format === 'csv'
      ? (rec: Record<string, unknown>) => `${fields.map((f) => csvCell(rec[f])).join(',')}\n`
      : (rec: Record<string, unknown>) => `${JSON.stringify(Object.fromEntries(fields.map((f) => [f, rec[f] ?? null])))}\n`;
    let buf = opts.format === 'csv' ? `${fields.join(',')}\n` : '';
    for (const rec of opts.attempts ? attemptRows(ledger) : itemRows(ledger)) {
      buf += line(rec);
      if (buf.length > 64 * 1024) {
        if (!(await writeOut(buf))) return EXIT_PIPE;
        buf = '';
      }
    }
    return (await writeOut(buf)) ? 0 : EXIT_PIPE;
  } finally {
    ledger.close();
  }
}

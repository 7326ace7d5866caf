import { existsSync } from 'node:fs';
import type { SharedOptions } from '../config.js';
import { FatalError } from '../errors.js';
import { SqliteLedger } from '../ledger/sqlite.js';
import { formatBytes } from '../progress.js';
import { dbPath } from './download.js';

export function openExisting(opts: SharedOptions): SqliteLedger {
  const path = dbPath(opts);
  if (!existsSync(path)) throw new FatalError(`no ledger at ${path} (run a download first, or pass --db)`);
  return new SqliteLedger(path);
}

export async function runStatus(opts: SharedOptions): Promise<number> {
  const ledger = openExisting(opts);
  const c = ledger.counts();
  ledger.close();
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ states: c.byState, statuses: c.byStatus, reasons: c.byReason, objects: c.objects, bytes_stored: c.bytesStored })}\n`);
    return 0;
  }
  const line = (o: Record<string, number>): string => Object.entries(o).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
  process.stdout.write(
    `jobs by state:   ${line(c.byState)}\n` +
      `last status:     ${line(c.byStatus)}\n` +
      `failure reasons: ${line(c.byReason)}\n` +
      `objects stored:  ${c.objects} (${formatBytes(c.bytesStored)})\n`,
  );
  return 0;
}

import type { ReconcileOptions } from '../config.js';
import { reconcile } from '../store/reconcile-steps.js';
import { startTelemetry } from '../telemetry.js';
import { openExisting } from '../ledger/locate.js';
import { openStore } from '../store/open-store.js';

/**
 * Runs the repair steps, then checks again without changing anything: exit 0 when ledger and
 * store agree afterwards (with --dry-run: when nothing needed repair), 1 otherwise.
 */
export async function runReconcile(opts: ReconcileOptions): Promise<number> {
  const store = await openStore(opts);
  const ledger = openExisting(opts);
  const telemetry = startTelemetry(opts, ledger.runId);
  try {
    telemetry.events.emit('reconcile_start', { out: opts.out, dry_run: opts.dryRun, verify: opts.verify });
    const result = await reconcile({ ledger, store, apply: !opts.dryRun, verify: opts.verify, now: Date.now(), events: telemetry.events });
    const after = opts.dryRun ? result : await reconcile({ ledger, store, apply: false, verify: false, now: Date.now() });
    const consistent = opts.dryRun ? result.repaired === 0 : after.repaired === 0;
    telemetry.events.emit('reconcile_end', { repaired: result.repaired, consistent });
    if (opts.json) {
      process.stdout.write(`${JSON.stringify({ dry_run: opts.dryRun, steps: result.steps, repaired: result.repaired, consistent })}\n`);
    } else if (!opts.quiet) {
      for (const { step, ...stats } of result.steps) {
        process.stdout.write(`${String(step).padEnd(22)} ${Object.entries(stats).map(([k, v]) => `${k} ${v}`).join(', ')}\n`);
      }
      const verb = opts.dryRun ? 'would repair' : 'repaired';
      process.stdout.write(`${verb} ${result.repaired}; ledger and store ${consistent ? 'agree' : 'still disagree'}\n`);
    }
    return consistent ? 0 : 1;
  } finally {
    ledger.close();
    store.close();
    await telemetry.close();
  }
}

import { unlink } from 'node:fs/promises';
import { describeReason } from '../errors.js';
import { breakerOutcome, nextAttemptAt, staysPending } from '../http/classify.js';
import { Deferred, type HostGate } from '../hosts/gate.js';
import { isDeadLocalOwner } from '../ledger/owner.js';
import type { JobRow, Ledger, Outcome } from '../ledger/types.js';
import type { Item } from '../manifest/parse.js';
import type { Lane, Pool, Task } from '../pool.js';
import { recordFromRow } from '../record.js';
import type { Reporter } from '../report.js';
import { partPath } from '../store/paths.js';
import { gateKey } from '../hosts/policy.js';
import { RESOLVERS } from '../resolve/resolvers.js';
import { downloadItem, Rehome, type ItemContext, type ItemResult } from './item.js';
import { initialTargets, type TargetState } from './targets.js';
import { LeaseLost } from './ops.js';
import type { RequestGate } from '../http/request-gate.js';

export interface Run {
  ctx: Omit<ItemContext, 'gate' | 'offNetwork' | 'pause'>;
  ledger: Ledger;
  reporter: Reporter;
  hosts: HostGate;
  pool: Pool;
  /** per-item aborts, fired when the heartbeat finds a lease lost */
  leases: Map<string, AbortController>;
}

/** The stored result of a done job, to put back when its revalidation fails. */
function storedOutcome(row: JobRow): Outcome {
  return {
    state: 'done', status: row.status ?? 'downloaded', reason: null, http_status: row.http_status, url: row.url, final_url: row.final_url,
    sha256: row.sha256, bytes: row.bytes, path: row.path, content_type: row.content_type, etag: row.etag, last_modified: row.last_modified,
    resumed_from: row.resumed_from ?? 0, attempts: row.attempts, elapsed_ms: row.elapsed_ms ?? 0,
  };
}

/**
 * The lane's permits, reported to the run's events and judged by the classification table. No
 * request goes out for a job this process no longer holds: a process stopped (SIGSTOP) past its
 * lease and continued finds it here before its heartbeat does.
 */
function itemGate(run: Run, key: string, lane: Lane, onSent: () => void): RequestGate {
  return {
    enter: async (host, signal) => {
      const permit = await lane.enter(host, signal);
      if (!run.ledger.holds(key, run.ctx.owner, run.ctx.now())) {
        permit.settle(null, 'interrupted', null);
        throw new LeaseLost();
      }
      return {
        sent: () => {
          onSent();
          permit.sent();
        },
        settle: (reason, retryAfterMs, status) => {
          run.ctx.events.emit('request', { host, status, error: reason && !reason.startsWith('http_') ? reason : null });
          return permit.settle(breakerOutcome(reason), reason, retryAfterMs);
        },
      };
    },
  };
}

/**
 * The queue an item waits in: its first URL's host, or for a work known only by identifiers the
 * API of the first resolver that can place it (under its metadata limits), or the host of a URL
 * that follows from the identifier alone (arXiv).
 */
function homeOf(run: Run, item: Item): string {
  const first = item.candidates[0];
  if (first) return first.host;
  const r = run.ctx.resolve;
  if (!r || !item.ids) return '';
  for (const name of r.config.order) {
    const step = RESOLVERS[name].step(item.ids, r.config.baseUrls[name], r.mailto);
    if (step === null) continue;
    const url = 'request' in step ? step.request : step.leads[0]?.url;
    if (url) return gateKey(new URL(url).hostname, 'request' in step ? 'metadata' : 'artifact');
  }
  return '';
}

/**
 * `tried`: an earlier turn of this item sent a request in this run before it was deferred;
 * `state`: where an earlier turn left its URLs (a deferred or rehomed item goes on from there).
 */
export function itemTask(run: Run, item: Item, row: JobRow, previous: JobRow | null, tried = false, state: TargetState | null = null, home = homeOf(run, item)): Task {
  const task: Task = {
    host: home,
    claim: async () => {
      if (await claim(run, item, row, previous)) return true;
      run.reporter.heldElsewhere += 1;
      return false;
    },
    unclaim: () => giveBack(run, item, previous),
    run: (lane) => work(run, item, row, previous, lane, tried, state, home),
    abandon: (reason) => {
      // Not claimed again in this run: the job keeps its state and the next run takes it up. It
      // counts as this run's failure (exit 1) only if this run sent a request for it.
      const record = recordFromRow(row, { state: 'failed', status: 'failed', reason, message: describeReason(reason), attempts: 0, elapsed_ms: 0, resumed_from: 0, source: item.source }, tried);
      run.reporter.record(record);
    },
  };
  return task;
}

/**
 * Runs an item claimed by its task (before it waited at its host's gate) and records it: download,
 * then record what it came to. A
 * holder that loses its lease stops the item and writes nothing more; an item whose host says
 * "not now" goes back to the pool; a done job being revalidated stays done with its stored object
 * whatever the revalidation met.
 */
async function work(run: Run, item: Item, row: JobRow, previous: JobRow | null, lane: Lane, tried: boolean, state: TargetState | null, home: string): Promise<void> {
  try {
    const ran = await runClaimed(run, item, row, previous, lane, tried, state, home);
    if (ran === 'lease-lost') return leaseLost(run, item);
    if (ran !== 'deferred') settle(run, item, row, previous, ran);
  } finally {
    lane.offNetwork();
  }
}

/** The lease goes back: the job is pending again, or done with its stored object if it was. */
function giveBack(run: Run, item: Item, previous: JobRow | null): void {
  const { ctx, ledger } = run;
  if (previous) ledger.finish(item.key, ctx.owner, storedOutcome(previous), ctx.now());
  else ledger.release(item.key, ctx.owner, ctx.now());
  ctx.events.emit('transition', { id: item.id, job: item.key, from: 'active', to: previous ? 'done' : 'pending' });
}

/** Another holder has the job: this one stops, records nothing and counts it as held elsewhere. */
function leaseLost(run: Run, item: Item): void {
  run.ctx.events.emit('lease_lost', { id: item.id, job: item.key });
  run.reporter.heldElsewhere += 1;
}

/** Takes the job's lease; false when another live holder has it. */
async function claim(run: Run, item: Item, row: JobRow, previous: JobRow | null): Promise<boolean> {
  const { ctx, ledger } = run;
  // A lease whose holder died on this host (kill -9) is taken over now, not after its TTL.
  const steal = row.state === 'active' && isDeadLocalOwner(row.lease_owner) ? row.lease_owner : null;
  if (!ledger.claim(item.key, ctx.owner, ctx.now(), ctx.opts.leaseTtl, { reopen: previous !== null, steal })) return false;
  ctx.events.emit('lease_acquired', { id: item.id, job: item.key, took_over: steal });
  ctx.events.emit('transition', { id: item.id, job: item.key, from: row.state, to: 'active' });
  if (row.state === 'active' && !steal) {
    // Taken over after expiry from a holder that may still be alive and writing: its part cannot
    // be trusted, and unlinking it sends any late writes of the old holder to a dead inode.
    await unlink(partPath(ctx.store.local, item.key)).catch(() => undefined);
    ledger.dropPart(item.key);
  }
  return true;
}

/** Downloads a claimed item under its own lease signal; a deferred item is queued again. */
async function runClaimed(run: Run, item: Item, row: JobRow, previous: JobRow | null, lane: Lane, tried: boolean, state: TargetState | null, home: string): Promise<ItemResult | 'lease-lost' | 'deferred'> {
  const { ctx, ledger } = run;
  let sent = tried;
  // One signal per item, which the run's own abort also fires (see stopLeases). On Node 20 a
  // signal built with AbortSignal.any from the run's long-lived one stays reachable from it, so
  // memory grew with every item of the run.
  const lease = new AbortController();
  if (ctx.signal.aborted) lease.abort();
  run.leases.set(item.key, lease);
  try {
    const gate = itemGate(run, item.key, lane, () => (sent = true));
    const result = await downloadItem({ ...ctx, signal: lease.signal, gate, offNetwork: () => lane.offNetwork(), pause: () => lane.pause() }, item, row, previous, state ?? initialTargets(item), home);
    return lease.signal.aborted && !ctx.signal.aborted ? 'lease-lost' : result;
  } catch (err) {
    // Taken over between two heartbeats, and found by finalize's own check instead.
    if (err instanceof LeaseLost) return 'lease-lost';
    if (err instanceof Rehome) {
      // Placed by a resolver: the item waits for its PDF host's slot, without its lease meanwhile.
      ledger.release(item.key, ctx.owner, ctx.now());
      run.pool.requeue(itemTask(run, item, { ...row, state: 'pending', lease_owner: null }, previous, sent, err.state, err.home));
      return 'deferred';
    }
    if (!(err instanceof Deferred)) {
      // A fatal error (disk full, ledger gone): hand the job back, its part kept, before the run ends.
      try {
        ledger.release(item.key, ctx.owner, ctx.now());
      } catch {
        // the ledger itself may be what failed; the lease then expires or is taken over
      }
      throw err;
    }
    // The host is paused (rate, breaker, cool-down): give the lease back and queue the item again.
    giveBack(run, item, previous);
    ctx.events.emit('deferred', { id: item.id, host: err.host, why: err.why, wait_ms: err.waitMs });
    run.pool.requeue(itemTask(run, item, { ...row, state: previous ? 'done' : 'pending', lease_owner: null }, previous, sent, null, home));
    return 'deferred';
  } finally {
    run.leases.delete(item.key);
  }
}

/**
 * Stores what the item came to and reports it. A failure keeps its message and when a later run
 * may ask again (SPEC §8); reasons that leave the job pending give the lease back instead.
 */
function settle(run: Run, item: Item, row: JobRow, previous: JobRow | null, result: ItemResult): void {
  const { ctx, ledger } = run;
  let { outcome } = result;
  if (outcome.state === 'failed') {
    const message = result.message ?? describeReason(outcome.reason ?? 'failed');
    outcome = { ...outcome, message, next_attempt_at: nextAttemptAt(result.later ?? 'at-once', row.failed_runs + 1, ctx.now()) };
  }
  let to: string = outcome.state;
  if (previous) {
    to = 'done';
    ledger.finish(item.key, ctx.owner, outcome.state === 'failed' ? storedOutcome(previous) : outcome, ctx.now());
  } else if (staysPending(outcome.reason)) {
    to = 'pending';
    ledger.release(item.key, ctx.owner, ctx.now());
  } else if (!ledger.finish(item.key, ctx.owner, outcome, ctx.now())) {
    return leaseLost(run, item);
  }
  ctx.events.emit('transition', { id: item.id, job: item.key, from: 'active', to });
  run.reporter.record(recordFromRow(row, { ...outcome, canonical_url: result.canonicalUrl, source: item.source }, true));
}

/** The run is stopping (a signal, a fatal error): every item in flight is aborted. */
export function stopLeases(run: Run): void {
  for (const lease of run.leases.values()) lease.abort();
}

/** Renews every lease of this process and aborts the items whose lease was lost meanwhile. */
export function heartbeat(run: Run): void {
  const now = run.ctx.now();
  const renewed = run.ledger.renew(run.ctx.owner, now, run.ctx.opts.leaseTtl);
  if (run.leases.size === 0) return;
  run.ctx.events.emit('lease_renewed', { count: renewed });
  // The renewal has just told the ledger which leases are still this process's.
  for (const [key, lease] of run.leases) if (!run.ledger.holds(key, run.ctx.owner, now)) lease.abort();
}

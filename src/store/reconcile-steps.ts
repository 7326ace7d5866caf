import { stat, unlink } from 'node:fs/promises';
import type { Events } from '../events.js';
import { isDeadLocalOwner } from '../ledger/owner.js';
import type { JobRow, JobState, Ledger, OpRow } from '../ledger/types.js';
import { linkItem } from './link.js';
import { placedSize, type ObjectStore } from './object-store.js';
import { objectRelPath, partPath } from './paths.js';
import { moveLegacyParts, stagedFiles } from './staging.js';

/**
 * `reconcile`: ordered repair steps, each returning what it found and did. With `apply` false
 * (--dry-run) every step only counts. Run it while no download is working on the ledger: it
 * leaves live leases alone, but a lease is only known dead once expired or its process is gone.
 */
export interface ReconcileContext {
  ledger: Ledger;
  store: ObjectStore;
  apply: boolean;
  verify: boolean;
  now: number;
  events?: Events;
}

export type StepStats = Record<string, number>;

export interface Step {
  name: string;
  run: (ctx: ReconcileContext) => Promise<StepStats>;
}

function isStale(job: JobRow, now: number): boolean {
  return (job.lease_expires_at ?? 0) < now || isDeadLocalOwner(job.lease_owner);
}

const CLEARED = { status: null, reason: null, sha256: null, bytes: null, path: null } as const;

/**
 * Active jobs whose holder is gone become pending. A holder whose process is dead left a part the
 * next run resumes. A holder whose lease only expired may be a process stopped (SIGSTOP, a
 * suspended machine) that will go on writing when continued: its part is unlinked, as a download
 * that takes such a job over does, so those late writes go to a file no one will read. Otherwise
 * the next holder would append to the very file the old one still writes into.
 */
const expireLeases: Step = {
  name: 'expire-leases',
  async run(ctx) {
    const s = { expired: 0, live: 0, parts_dropped: 0 };
    for (const job of ctx.ledger.jobsIn('active')) {
      if (!isStale(job, ctx.now)) {
        s.live += 1;
        continue;
      }
      if (ctx.apply && !ctx.ledger.repair(job.key, 'active', 'pending', {}, ctx.now)) continue;
      s.expired += 1;
      if (isDeadLocalOwner(job.lease_owner)) continue;
      s.parts_dropped += 1;
      if (!ctx.apply) continue;
      await unlink(partPath(ctx.store.local, job.key)).catch(() => undefined);
      ctx.ledger.dropPart(job.key);
    }
    return s;
  },
};

async function finishOp(ctx: ReconcileContext, op: OpRow, job: JobRow | undefined): Promise<'finished' | 'rolled_back'> {
  if (op.kind === 'finalize' && op.detail) {
    if ((await placedSize(ctx.store, partPath(ctx.store.local, op.job_key), op.detail)) === null) {
      if (ctx.apply) ctx.ledger.dropOp(op.key);
      return 'rolled_back';
    }
    if (ctx.apply) {
      await dropPlacedPart(ctx.store, partPath(ctx.store.local, op.job_key), op.detail);
      ctx.ledger.finishOp(op.key, { path: objectRelPath(op.detail), deduped: false }, ctx.now);
    }
    return 'finished';
  }
  const object = job?.sha256 ? ctx.store.localPath(job.sha256) : null;
  if (op.kind === 'link' && op.detail && job?.state === 'done' && object) {
    const { dir } = JSON.parse(op.detail) as { dir: string };
    if (ctx.apply) {
      const name = await linkItem(dir, job.item_id, object);
      ctx.ledger.finishOp(op.key, { name }, ctx.now);
    }
    return 'finished';
  }
  // An unfinished stream leaves a part that the next run resumes; the op is begun again then.
  if (ctx.apply) ctx.ledger.dropOp(op.key);
  return 'rolled_back';
}

/**
 * The part of a finalize that placed its object and crashed before dropping the part. In a
 * directory the part can be the object itself (an older version linked, then unlinked: same
 * inode); uploaded to a bucket, the part is a copy whose object is confirmed.
 */
async function dropPlacedPart(store: ObjectStore, part: string, sha256: string): Promise<void> {
  const local = store.localPath(sha256);
  if (local === null) {
    await unlink(part).catch(() => undefined);
    return;
  }
  const [p, o] = await Promise.all([stat(part).catch(() => null), stat(local)]);
  if (p && p.ino === o.ino && p.dev === o.dev) await unlink(part);
}

/** Ops that started and never finished: finished when their effect is complete, else rolled back. */
const abandonedOps: Step = {
  name: 'finish-abandoned-ops',
  async run(ctx) {
    const s = { finished: 0, rolled_back: 0, in_progress: 0 };
    for (const op of ctx.ledger.ops('started')) {
      const job = ctx.ledger.job(op.job_key);
      if (job?.state === 'active' && !isStale(job, ctx.now)) {
        s.in_progress += 1;
        continue;
      }
      s[await finishOp(ctx, op, job)] += 1;
    }
    return s;
  },
};

/** A finalize that completed while its job never recorded the finish: the job takes the object. */
const adoptObjects: Step = {
  name: 'adopt-objects',
  async run(ctx) {
    const s = { adopted: 0 };
    for (const op of ctx.ledger.unrecordedFinalizes()) {
      const job = ctx.ledger.job(op.job_key);
      if (!job || !op.detail) continue;
      const size = await ctx.store.size(op.detail);
      if (size === null) continue;
      const patch = { status: 'downloaded' as const, reason: null, sha256: op.detail, path: objectRelPath(op.detail), bytes: size };
      if (!ctx.apply || ctx.ledger.repair(job.key, job.state as JobState, 'done', patch, ctx.now)) s.adopted += 1;
    }
    return s;
  },
};

/** Done jobs whose object is gone go back to pending, so the next run fetches them again. */
const requeueMissing: Step = {
  name: 'requeue-missing',
  async run(ctx) {
    const s = { checked: 0, requeued: 0 };
    const present = await ctx.store.presence();
    for (const job of ctx.ledger.jobsIn('done')) {
      s.checked += 1;
      if (job.path && job.sha256 && (await present(job.sha256))) continue;
      if (!ctx.apply || ctx.ledger.repair(job.key, 'done', 'pending', CLEARED, ctx.now)) s.requeued += 1;
    }
    return s;
  },
};

/** Parts of jobs still to do are kept for resume; anything else in staging is an orphan. */
const sweepParts: Step = {
  name: 'sweep-parts',
  async run(ctx) {
    const s = { kept: 0, deleted: 0, records_dropped: 0 };
    // Parts an earlier version left directly in .staging move to their place first.
    if (ctx.apply) await moveLegacyParts(ctx.store.local);
    const onDisk = new Set<string>();
    for (const f of await stagedFiles(ctx.store.local)) {
      const job = f.key ? ctx.ledger.job(f.key) : undefined;
      if (f.key && job && job.state !== 'done') {
        s.kept += 1;
        onDisk.add(f.key);
        continue;
      }
      if (ctx.apply) {
        await unlink(f.path).catch(() => undefined);
        if (f.key) ctx.ledger.dropPart(f.key);
      }
      s.deleted += 1;
    }
    for (const key of ctx.ledger.partKeys()) {
      if (onDisk.has(key)) continue;
      if (ctx.apply) ctx.ledger.dropPart(key);
      s.records_dropped += 1;
    }
    return s;
  },
};

/** --verify: every object is hashed again; one whose bytes do not match its name is quarantined. */
const verifyObjects: Step = {
  name: 'verify-objects',
  async run(ctx) {
    const s = { checked: 0, corrupt: 0, requeued: 0 };
    if (!ctx.verify) return s;
    for await (const sha of ctx.store.objects()) {
      s.checked += 1;
      if ((await ctx.store.hash(sha)) === sha) continue;
      s.corrupt += 1;
      if (!ctx.apply) continue;
      await ctx.store.quarantine(sha, ctx.now);
      for (const key of ctx.ledger.doneKeysBySha(sha)) {
        if (ctx.ledger.repair(key, 'done', 'pending', CLEARED, ctx.now)) s.requeued += 1;
      }
    }
    return s;
  },
};

export const STEPS: readonly Step[] = [expireLeases, abandonedOps, adoptObjects, verifyObjects, requeueMissing, sweepParts];

/** Counts that mean the ledger and the store disagreed (or, with --dry-run, would be changed). */
export const REPAIR_COUNTS = new Set(['expired', 'finished', 'rolled_back', 'adopted', 'requeued', 'deleted', 'records_dropped', 'corrupt']);

export type StepReport = Record<string, string | number>;

export async function reconcile(ctx: ReconcileContext): Promise<{ steps: StepReport[]; repaired: number }> {
  const steps: StepReport[] = [];
  let repaired = 0;
  for (const step of STEPS) {
    const started = Date.now();
    const stats = await step.run(ctx);
    for (const [k, v] of Object.entries(stats)) if (REPAIR_COUNTS.has(k)) repaired += v;
    ctx.events?.emit('reconcile_step', { step: step.name, dry_run: !ctx.apply, elapsed_ms: Date.now() - started, ...stats });
    steps.push({ step: step.name, ...stats });
  }
  ctx.ledger.flush();
  return { steps, repaired };
}

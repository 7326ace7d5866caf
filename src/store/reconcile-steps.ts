import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Events } from '../events.js';
import { isDeadLocalOwner } from '../ledger/owner.js';
import type { JobRow, JobState, Ledger, OpRow } from '../ledger/types.js';
import { linkItem } from './link.js';
import { objectPath, objectRelPath, partPath } from './paths.js';
import { moveLegacyParts, stagedFiles } from './staging.js';

/**
 * `reconcile`: ordered repair steps, each returning what it found and did. With `apply` false
 * (--dry-run) every step only counts. Run it while no download is working on the ledger: it
 * leaves live leases alone, but a lease is only known dead once expired or its process is gone.
 */
export interface ReconcileContext {
  ledger: Ledger;
  out: string;
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

export const QUARANTINE_DIR = '.quarantine';

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
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
      await unlink(partPath(ctx.out, job.key)).catch(() => undefined);
      ctx.ledger.dropPart(job.key);
    }
    return s;
  },
};

async function finishOp(ctx: ReconcileContext, op: OpRow, job: JobRow | undefined): Promise<'finished' | 'rolled_back'> {
  if (op.kind === 'finalize' && op.detail) {
    const object = objectPath(ctx.out, op.detail);
    if (!(await exists(object))) {
      if (ctx.apply) ctx.ledger.dropOp(op.key);
      return 'rolled_back';
    }
    if (ctx.apply) {
      const part = partPath(ctx.out, op.job_key);
      // Crashed between link and unlink: the part is the object itself (same inode).
      const [p, o] = await Promise.all([stat(part).catch(() => null), stat(object)]);
      if (p && p.ino === o.ino && p.dev === o.dev) await unlink(part);
      ctx.ledger.finishOp(op.key, { path: objectRelPath(op.detail), deduped: false }, ctx.now);
    }
    return 'finished';
  }
  if (op.kind === 'link' && op.detail && job?.state === 'done' && job.sha256) {
    const { dir } = JSON.parse(op.detail) as { dir: string };
    if (ctx.apply) {
      const name = await linkItem(dir, job.item_id, objectPath(ctx.out, job.sha256));
      ctx.ledger.finishOp(op.key, { name }, ctx.now);
    }
    return 'finished';
  }
  // An unfinished stream leaves a part that the next run resumes; the op is begun again then.
  if (ctx.apply) ctx.ledger.dropOp(op.key);
  return 'rolled_back';
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
      const st = await stat(objectPath(ctx.out, op.detail)).catch(() => null);
      if (!st) continue;
      const patch = { status: 'downloaded' as const, reason: null, sha256: op.detail, path: objectRelPath(op.detail), bytes: st.size };
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
    for (const job of ctx.ledger.jobsIn('done')) {
      s.checked += 1;
      if (job.path && (await exists(join(ctx.out, job.path)))) continue;
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
    if (ctx.apply) await moveLegacyParts(ctx.out);
    const onDisk = new Set<string>();
    for (const f of await stagedFiles(ctx.out)) {
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

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** --verify: every object is hashed again; one whose bytes do not match its name is quarantined. */
const verifyObjects: Step = {
  name: 'verify-objects',
  async run(ctx) {
    const s = { checked: 0, corrupt: 0, requeued: 0 };
    if (!ctx.verify) return s;
    const shards = (await readdir(ctx.out).catch(() => [] as string[])).filter((d) => /^[0-9a-f]{2}$/.test(d));
    for (const shard of shards) {
      for (const f of await readdir(join(ctx.out, shard))) {
        const sha = /^([0-9a-f]{64})\.pdf$/.exec(f)?.[1];
        if (!sha) continue;
        s.checked += 1;
        const path = join(ctx.out, shard, f);
        if ((await sha256File(path)) === sha) continue;
        s.corrupt += 1;
        if (!ctx.apply) continue;
        await mkdir(join(ctx.out, QUARANTINE_DIR), { recursive: true });
        await rename(path, join(ctx.out, QUARANTINE_DIR, `${f}.${ctx.now}`));
        for (const key of ctx.ledger.doneKeysBySha(sha)) {
          if (ctx.ledger.repair(key, 'done', 'pending', CLEARED, ctx.now)) s.requeued += 1;
        }
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

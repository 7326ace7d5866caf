import { setTimeout as sleep } from 'node:timers/promises';
import pLimit, { type LimitFunction } from 'p-limit';
import { FINISHING_PER_SLOT, PLAN_WINDOW } from './config.js';
import { ItemError } from './errors.js';
import { Deferred, type Blocked, type HostGate, type Permit } from './hosts/gate.js';
import { HostSlots, holdSlot, type Free } from './hosts/slots.js';
import { WaitLine, type Waiter } from './wait-line.js';

export interface Task {
  /** the host of the item's first request: the item waits in this host's queue */
  host: string;
  /**
   * Takes the task's job before it waits at its host's gate; false: another process has it, and
   * the task ends there. Processes sharing a ledger then never spend a host's request slot on a
   * job one of the others is doing.
   */
  claim?: () => Promise<boolean>;
  /** gives a claimed job back when the task ends without running (abandoned, the run stopping) */
  unclaim?: () => void;
  run: (lane: Lane) => Promise<void>;
  /** the run ends with this task still blocked (open breaker, cool-down beyond the cap) */
  abandon: (reason: string) => void;
}

/** A running task's way to the network: one network slot, its host's slot, its hosts' gate. */
export interface Lane {
  /** Resolves when a request to `host` may go (its permit); throws Deferred when not within max_delay_ms. */
  enter(host: string, signal: AbortSignal): Promise<Permit>;
  /** Gives the network slot back while the task waits (a backoff); the next `enter` takes one again. */
  pause(): void;
  /** Nothing more of this task goes to the network: its slots may start another task. */
  offNetwork(): void;
}

/** A started task waiting at its host's gate before its first request. */
interface GateWait {
  host: string;
  /** when its wait ends (ms, performance clock) */
  until: number;
  reason: string | null;
  wake: (abandon: string | null) => void;
}

class Stopped extends Error {}

/**
 * A host's max_concurrent kept by every process on one ledger together: a task holds one of the
 * host's permits from its first request until it is off the network.
 */
export interface SharedCap {
  /** a permit's id, or null when all `cap` are held */
  take(host: string, cap: number): number | null;
  free(id: number): void;
}

/** How often a task whose host has no permit free asks again. */
const PERMIT_POLL_MS = 25;

/** How long a free network slot may wait for the host that bounds the run when its token is due. */
const LOOKAHEAD_MS = 50;
/** How often the hosts that bound the run are looked for. */
const CRITICAL_EVERY_MS = 100;

/**
 * Runs tasks under the politeness bounds with p-limit: one limit per host (`--per-host`, or the
 * host's `max_concurrent` if lower) whose queue is the host's backlog, and one global limit of
 * network slots (`--concurrency`). A task first takes its host's slot and claims its job, then
 * waits at the host's gate (rate token, breaker, cool-down) holding nothing else, and only then
 * asks for a network slot: inside it, the token is taken or the slot given back, never slept on.
 * Each free network slot goes to the waiting task whose host has the most left to do (see
 * WaitLine). `add` waits while the window of queued and started tasks is full, which keeps memory
 * flat.
 */
export class Pool {
  private readonly network: LimitFunction;
  private readonly hosts = new HostSlots();
  /** tasks waiting for a network slot */
  private readonly line: WaitLine;
  private readonly gateWaits = new Set<GateWait>();
  /** hosts given up for the run, and why: their queued tasks end with that reason */
  private readonly abandoned = new Map<string, string>();
  /** hosts a free slot is being held for (see dueIn) */
  private readonly holding = new Set<string>();
  /** the gate waits of each host */
  private readonly waitsOf = new Map<string, Set<GateWait>>();
  /** hosts that bound the run, with their pace and how many requests out it needs (see findCritical) */
  private readonly critical = new Map<string, { spacing: number; needs: number }>();
  private criticalAt = 0;
  /** tasks queued for their host's slot */
  private queued = 0;
  /** tasks started and not ended (at the gate, transferring, or finishing) */
  private started = 0;
  /** tasks that gave their network slot back for good and still run */
  private finishing = 0;
  private stopped = false;
  private failure: unknown = null;
  private waiters: (() => void)[] = [];
  /** called once, with the first error a task throws (the run is ending: abort what is in flight) */
  onFailure: ((err: unknown) => void) | null = null;
  /**
   * What the first request needs ready (the HTTP client), awaited before the first slot is taken:
   * a request leaves right after its slot, not a module load later.
   */
  warmUp: (() => Promise<unknown>) | null = null;
  private warm: Promise<unknown> | null = null;
  /** with other processes on the ledger: their permits count against each host's cap too */
  sharedCap: SharedCap | null = null;

  constructor(
    private readonly concurrency: number,
    private readonly perHost: number,
    private readonly gate: HostGate,
    private readonly window = Math.max(PLAN_WINDOW, concurrency * 4),
  ) {
    this.network = pLimit(concurrency);
    this.line = new WaitLine((host) => this.hosts.remaining(host));
  }

  async add(task: Task): Promise<void> {
    // Queued and started tasks both count: a task of a host not yet asked starts at once, and
    // would otherwise let the manifest be read without bound into tasks waiting for a network slot.
    while (this.queued + this.started >= this.window && !this.stopped) await this.change();
    this.enqueue(task);
  }

  /** Puts a task back (its host said wait); it runs again when the host may be asked. */
  requeue(task: Task): void {
    this.enqueue(task);
  }

  /** Resolves when every task has run or been abandoned; rejects if a task threw (a bug). */
  async drain(): Promise<void> {
    while (this.started > 0 || this.queued > 0) await this.change();
    if (this.failure) throw this.failure;
  }

  /** Stop starting tasks (graceful shutdown); running ones finish on their own. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const w of this.gateWaits) w.wake(null);
    for (const w of this.line.drain()) w.cancel(new Stopped());
    this.notify();
  }

  private cap(host: string): number {
    return Math.min(this.perHost, this.gate.maxConcurrent(host));
  }

  private change(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private notify(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const resolve of w) resolve();
  }

  private enqueue(task: Task): void {
    if (this.stopped) return;
    this.queued += 1;
    this.hosts.hold(task.host, this.cap(task.host)).then(
      (freeHost) => {
        this.queued -= 1;
        void this.start(task, freeHost);
      },
      // The host was given up for the run (clearQueue): its waiting tasks end blocked.
      () => {
        this.queued -= 1;
        if (!this.stopped) task.abandon(this.abandoned.get(task.host) ?? 'breaker_open');
        this.notify();
      },
    );
  }

  private async start(task: Task, freeHost: Free): Promise<void> {
    this.started += 1;
    this.notify();
    let freePermit: Free | null = null;
    const lane = new TaskLane(this, task.host, () => {
      freeHost();
      freePermit?.();
      freePermit = null;
    });
    let claimed = false;
    let ran = false;
    try {
      if (task.claim && !(claimed = await task.claim())) return;
      freePermit = await this.hostPermit(task.host);
      const first = await this.firstRequest(task.host);
      if (typeof first === 'string') task.abandon(first);
      else {
        lane.admitted(first.permit, first.free);
        ran = true;
        await task.run(lane);
      }
    } catch (err) {
      if (!(err instanceof Stopped) && this.failure === null) {
        this.failure = err;
        this.onFailure?.(err);
        this.stop();
      }
    } finally {
      if (claimed && !ran) task.unclaim?.();
      lane.end();
      this.started -= 1;
      this.notify();
      this.checkStuck();
    }
  }

  /**
   * One of the host's permits shared with the other processes (none to take without a shared
   * ledger); waits (polling) while all are held.
   * @internal
   */
  async hostPermit(host: string): Promise<Free> {
    const shared = this.sharedCap;
    if (!shared) return () => undefined;
    const cap = this.gate.maxConcurrent(host);
    // A host without a cap has nothing to share.
    if (cap >= Number.MAX_SAFE_INTEGER) return () => undefined;
    for (;;) {
      if (this.stopped) throw new Stopped();
      const id = shared.take(host, cap);
      if (id !== null) return () => shared.free(id);
      await sleep(PERMIT_POLL_MS);
    }
  }

  /** Waits at the host's gate holding no network slot; a string is the reason to give up. */
  private async firstRequest(host: string): Promise<{ permit: Permit; free: Free } | string> {
    if (this.warmUp) await (this.warm ??= this.warmUp());
    for (;;) {
      if (this.stopped) throw new Stopped();
      const blocked = this.gate.check(host);
      if (blocked) {
        const given = await this.waitAtGate(host, blocked);
        if (given) return given;
        continue;
      }
      const free = await this.networkSlot(host);
      if (this.stopped) {
        free();
        throw new Stopped();
      }
      // Another task of the host may have taken the token while this one queued: look again,
      // now as the request that goes at once.
      if (this.gate.check(host, undefined, true)) {
        free();
        continue;
      }
      return { permit: this.gate.admit(host), free };
    }
  }

  private waitAtGate(host: string, blocked: Blocked): Promise<string | null> {
    return new Promise((resolve) => {
      const entry: GateWait = {
        host,
        until: performance.now() + blocked.waitMs,
        reason: this.gate.abandonReason(host, blocked),
        wake: (abandon) => {
          clearTimeout(timer);
          this.gateWaits.delete(entry);
          const mine = this.waitsOf.get(host)!;
          mine.delete(entry);
          if (mine.size === 0) this.waitsOf.delete(host);
          resolve(abandon);
        },
      };
      const timer = setTimeout(() => entry.wake(null), blocked.waitMs);
      this.gateWaits.add(entry);
      const mine = this.waitsOf.get(host);
      if (mine) mine.add(entry);
      else this.waitsOf.set(host, new Set([entry]));
      this.checkStuck();
    });
  }

  /**
   * Nothing runs and every started task waits on a host shut for the rest of the run (an open
   * breaker, a Retry-After beyond the cap): those hosts' tasks end now, queued ones included,
   * rather than the run probing them item by item.
   */
  private checkStuck(): void {
    if (this.stopped || this.started === 0 || this.gateWaits.size < this.started) return;
    for (const w of this.gateWaits) if (w.reason === null) return;
    for (const w of [...this.gateWaits]) {
      this.abandoned.set(w.host, w.reason!);
      this.hosts.clear(w.host);
      w.wake(w.reason);
    }
  }

  /**
   * A network slot, granted to the best waiting task when one frees (see the class comment).
   * Rejects with Stopped at shutdown, or with the signal's reason when it aborts.
   */
  networkSlot(home: string, signal?: AbortSignal): Promise<Free> {
    return new Promise((resolve, reject) => {
      if (this.stopped) return reject(new Stopped());
      const onAbort = (): void => waiter.cancel(signal!.reason as Error);
      const waiter: Waiter = {
        home,
        cancelled: false,
        grant: (free) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(free);
        },
        cancel: (err) => {
          if (waiter.cancelled) return;
          waiter.cancelled = true;
          signal?.removeEventListener('abort', onAbort);
          reject(err);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.line.push(waiter);
      void holdSlot(this.network).then((free) => this.grant(free));
    });
  }

  private async grant(free: Free): Promise<void> {
    // Tasks that have left the network still finish locally (fsync, the finalize's wait for its
    // group commit, the move); a few per network slot may, so those waits do not hold transfers back.
    while (this.finishing >= this.concurrency * FINISHING_PER_SLOT && !this.stopped) await this.change();
    // The task that freed this slot may have freed its host's slot too: the next task of that
    // host joins the line before the slot is given.
    await new Promise(setImmediate);
    // A host with more left to do than the best one waiting is due in a moment: the slot waits
    // for it rather than start a shorter job elsewhere (see dueIn).
    // A first in line whose token another task of its host just took does not count: it only
    // gives the slot back.
    const top = this.line.peek();
    const due = this.dueIn(top && this.gate.check(top.w.home) === null ? top.left : 0);
    if (due !== null) await sleep(due + 1);
    // The task with the most left goes first (see WaitLine): the host whose pace bounds the run
    // is never kept waiting by hosts with little left.
    const w = this.line.take();
    if (w === null) return free();
    w.cancelled = true;
    w.grant(free);
  }

  /**
   * How long this free slot should wait for a task due soon, or null to give it now. It waits
   * only for the host that bounds the run: one whose items left, at its pace, take at least half
   * as long as all the work left takes the pool (`critical`), with more left than the best task
   * waiting, and fewer requests out than its pace needs when answers take as long as lately
   * (spacing shorter than a request: several out at once, out of step). When every slot frees at
   * about the same time, such a host otherwise gets one slot per round and falls to a fraction
   * of its pace; holding one slot for it once moves that slot out of step for good.
   */
  private dueIn(than: number): number | null {
    const now = performance.now();
    if (now >= this.criticalAt) this.findCritical(now);
    let due: number | null = null;
    let host: string | null = null;
    for (const [h, { spacing, needs }] of this.critical) {
      if (this.hosts.remaining(h) <= Math.max(1, than) || this.holding.has(h)) continue;
      const horizon = needs > 1 && this.gate.inflight(h) < needs ? Math.max(LOOKAHEAD_MS, spacing) : LOOKAHEAD_MS;
      for (const g of this.waitsOf.get(h) ?? []) {
        const ms = g.until - now;
        if (g.reason === null && ms <= horizon && (due === null || ms < due)) {
          due = Math.max(0, ms);
          host = h;
        }
      }
    }
    if (host === null) return null;
    // One slot held per host at a time.
    const held = host;
    this.holding.add(held);
    setTimeout(() => this.holding.delete(held), due! + 1);
    return due;
  }

  /**
   * The hosts whose items left take at their pace at least half as long as all the work left
   * takes the pool.
   * Looked for at most every CRITICAL_EVERY_MS, so a grant does not scan every host.
   */
  private findCritical(now: number): void {
    this.criticalAt = now + CRITICAL_EVERY_MS;
    this.critical.clear();
    const requestMs = this.gate.requestMs;
    const workLeftMs = ((this.queued + this.started) * requestMs) / this.concurrency;
    // A host with one item left gains nothing from a slot held for it.
    for (const [h, left] of this.hosts.withWork(2)) {
      const spacing = this.gate.spacingMs(h);
      if (spacing === 0 || left * spacing < workLeftMs / 2) continue;
      this.critical.set(h, { spacing, needs: Math.ceil(requestMs / spacing) });
    }
  }

  /** @internal */
  enterFinishing(): void {
    this.finishing += 1;
  }

  /** @internal */
  leaveFinishing(): void {
    this.finishing -= 1;
    this.notify();
  }

  /** @internal */
  get gateRef(): HostGate {
    return this.gate;
  }

  /** @internal */
  get slots(): HostSlots {
    return this.hosts;
  }

  /** @internal */
  hostCap(host: string): number {
    return this.cap(host);
  }
}

/** Sleeps; an abort (shutdown, lost lease) ends the item as interrupted. */
async function pauseFor(ms: number, signal: AbortSignal): Promise<void> {
  try {
    await sleep(ms, undefined, { signal });
  } catch {
    throw new ItemError('interrupted', 'interrupted while waiting for the host');
  }
}

/** A wait for a slot or permit that the run's stop ended is the item's interruption. */
function stopping(signal: AbortSignal): (err: unknown) => never {
  return (err) => {
    throw err instanceof Stopped || signal.aborted ? new ItemError('interrupted', 'the run is stopping') : err;
  };
}

/** Polling step for a redirect hop waiting for a slot of its host. */
const HOP_POLL_MS = 20;

/**
 * The slots one task holds: its home host's slot for its whole network part, a network slot
 * while it talks to a server, and a slot of a redirect hop's host while it talks to that host.
 */
class TaskLane implements Lane {
  private permit: Permit | null = null;
  private network: Free | null = null;
  private hop: { host: string; free: Free } | null = null;
  private offNet = false;

  constructor(
    private readonly pool: Pool,
    private readonly home: string,
    private freeHome: Free | null,
  ) {}

  admitted(permit: Permit, network: Free): void {
    this.permit = permit;
    this.network = network;
  }

  async enter(host: string, signal: AbortSignal): Promise<Permit> {
    const first = this.permit;
    this.permit = null;
    if (first && first.host === host) return first;
    first?.settle(null, null, null);
    const gate = this.pool.gateRef;
    const deadline = Date.now() + gate.maxDelayMs(host);
    if (this.offNet) await this.rejoin(deadline, signal);
    await this.holdHop(host, deadline, signal);
    for (;;) {
      const blocked = gate.check(host, undefined, this.network !== null);
      if (blocked) {
        // An open breaker is checked by the pool's probe, not by this item's attempts.
        if (blocked.why === 'breaker' || Date.now() + blocked.waitMs > deadline) {
          this.pause();
          throw new Deferred(host, blocked.why, blocked.waitMs);
        }
        this.pause();
        await pauseFor(blocked.waitMs, signal);
        continue;
      }
      if (!this.network) {
        this.network = await this.pool.networkSlot(this.home, signal).catch(stopping(signal));
        continue;
      }
      return gate.admit(host);
    }
  }

  /**
   * A hop to another host holds a slot of that host too, so its cap holds on every hop; it never
   * queues for one while holding it (two hosts redirecting to each other would deadlock): it takes
   * a free one, or looks again until the host's max_delay_ms has passed.
   */
  private async holdHop(host: string, deadline: number, signal: AbortSignal): Promise<void> {
    if (this.hop?.host === host) return;
    this.hop?.free();
    this.hop = null;
    if (host === this.home) return;
    this.hop = { host, free: await this.freeSlotOf(host, deadline, signal) };
  }

  /** A free slot of `host`, looked for again every HOP_POLL_MS until `deadline` (then Deferred). */
  private async freeSlotOf(host: string, deadline: number, signal: AbortSignal): Promise<Free> {
    for (;;) {
      const free = this.pool.slots.tryHold(host, this.pool.hostCap(host));
      if (free) return free;
      if (Date.now() + HOP_POLL_MS > deadline) {
        this.pause();
        throw new Deferred(host, 'busy', HOP_POLL_MS);
      }
      this.pause();
      await pauseFor(HOP_POLL_MS, signal);
    }
  }

  /**
   * Back to the network after leaving it, when something after the body (an fsync that timed
   * out, say) is retried: the slots it gave back may serve other tasks now, so it takes a slot of
   * its host (and the host's shared permit) again, the way a hop does, and stops finishing.
   */
  private async rejoin(deadline: number, signal: AbortSignal): Promise<void> {
    const free = await this.freeSlotOf(this.home, deadline, signal);
    let permit: Free;
    try {
      permit = await this.pool.hostPermit(this.home).catch(stopping(signal));
    } catch (err) {
      free();
      throw err;
    }
    this.freeHome = () => {
      free();
      permit();
    };
    this.offNet = false;
    this.pool.leaveFinishing();
  }

  pause(): void {
    this.network?.();
    this.network = null;
  }

  offNetwork(): void {
    if (this.offNet) return;
    this.offNet = true;
    this.pool.enterFinishing();
    this.freeSlots();
  }

  private freeSlots(): void {
    this.permit?.settle(null, null, null);
    this.permit = null;
    this.pause();
    this.hop?.free();
    this.hop = null;
    this.freeHome?.();
    this.freeHome = null;
  }

  end(): void {
    if (this.offNet) this.pool.leaveFinishing();
    else this.freeSlots();
  }
}

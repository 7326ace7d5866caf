import { rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import type Database from 'better-sqlite3';

/** How often a waiting process asks for the write lock again. */
const POLL_MS = 1;
/** Longest a committing process stands aside for a waiting one. */
const YIELD_MAX_MS = 5;
/** A wait flag older than this was left by a process that died waiting. */
const FLAG_STALE_MS = 500;

const sleeper = new Int32Array(new SharedArrayBuffer(4));
function sleepSync(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

export function isBusy(err: unknown): boolean {
  const code = (err as { code?: string }).code ?? '';
  // Extended codes too: SQLITE_BUSY_RECOVERY (another connection rebuilding the WAL index),
  // SQLITE_BUSY_SNAPSHOT, SQLITE_LOCKED_SHAREDCACHE…: each passes once the other is done.
  return code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED');
}

/**
 * The ledger's write lock, taken fairly between processes. SQLite's own busy handler polls at up
 * to 100 ms while a busy writer holds the lock almost all the time (its group commits follow each
 * other within microseconds), so a second process sharing the ledger could wait seconds with its
 * event loop blocked. Here a waiter polls every millisecond and raises a flag file beside the
 * ledger; a writer that sees the flag after a commit stands aside until the waiter has the lock.
 */
export class WriteLock {
  private readonly flag: string | null;

  constructor(
    private readonly db: Database.Database,
    private readonly timeoutMs: number,
  ) {
    this.flag = db.memory ? null : `${db.name}-wait`;
  }

  /** BEGIN IMMEDIATE, waiting up to the lock timeout; throws SQLITE_BUSY past it. */
  begin(): void {
    // A PRAGMA acts when it is prepared, so it cannot be a statement prepared once.
    this.db.pragma('busy_timeout = 0');
    try {
      if (this.tryBegin()) return;
      this.waitForLock();
    } finally {
      this.db.pragma(`busy_timeout = ${Math.round(this.timeoutMs)}`);
    }
  }

  /**
   * Runs `fn` (statements outside a group that may need the write lock: opening a ledger, a
   * migration) the same way: tried at once, then again every millisecond with the flag raised,
   * up to the lock timeout. `fn` must be safe to run again after SQLITE_BUSY. SQLite's busy
   * handler let a process opening a ledger wait for the lock past the timeout while others wrote.
   */
  inTurns<T>(fn: () => T): T {
    this.db.pragma('busy_timeout = 0');
    const deadline = Date.now() + this.timeoutMs;
    let flagged = false;
    try {
      for (;;) {
        try {
          return fn();
        } catch (err) {
          if (!isBusy(err) || Date.now() >= deadline) throw err;
        }
        this.raiseFlag();
        flagged = true;
        sleepSync(POLL_MS);
      }
    } finally {
      if (flagged) this.lowerFlag();
      this.db.pragma(`busy_timeout = ${Math.round(this.timeoutMs)}`);
    }
  }

  /** COMMIT, then stand aside while another process waits for the lock. */
  commit(): void {
    this.db.exec('COMMIT');
    if (!this.flag || !this.othersWaiting()) return;
    const until = Date.now() + YIELD_MAX_MS;
    do sleepSync(POLL_MS);
    while (Date.now() < until && this.othersWaiting());
  }

  private tryBegin(): boolean {
    try {
      this.db.exec('BEGIN IMMEDIATE');
      return true;
    } catch (err) {
      if (!isBusy(err)) throw err;
      return false;
    }
  }

  private waitForLock(): void {
    const deadline = Date.now() + this.timeoutMs;
    try {
      for (;;) {
        this.raiseFlag();
        sleepSync(POLL_MS);
        if (this.tryBegin()) return;
        if (Date.now() >= deadline) this.db.exec('BEGIN IMMEDIATE');
      }
    } finally {
      this.lowerFlag();
    }
  }

  private othersWaiting(): boolean {
    const st = statSync(this.flag!, { throwIfNoEntry: false });
    return st !== undefined && Date.now() - st.mtimeMs < FLAG_STALE_MS;
  }

  private raiseFlag(): void {
    if (!this.flag) return;
    const now = new Date();
    try {
      utimesSync(this.flag, now, now);
    } catch {
      writeFileSync(this.flag, '');
    }
  }

  private lowerFlag(): void {
    if (this.flag) rmSync(this.flag, { force: true });
  }
}

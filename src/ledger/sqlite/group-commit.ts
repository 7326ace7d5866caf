import type Database from 'better-sqlite3';
import { LEDGER_BATCH } from '../../config.js';
import { WriteLock } from './write-lock.js';

/** Longest a write waits for its group's commit, unless someone asks for it sooner. */
const COMMIT_AFTER_MS = 25;

/**
 * Writes grouped into short IMMEDIATE transactions: a group commits after LEDGER_BATCH writes, a
 * few milliseconds, or at the end of the turn in which someone waits for it (`committed`). One
 * commit per write blocked the event loop; a group costs one.
 */
export class GroupCommit {
  private pending = 0;
  private timer: NodeJS.Timeout | null = null;
  /** callers of committed() waiting for the open group's commit */
  private waiting: { resolve: () => void; reject: (err: Error) => void }[] = [];
  /** a commit at the end of this turn is asked for */
  private soon = false;

  private readonly lock: WriteLock;
  private readonly failureListeners: (() => void)[] = [];

  constructor(db: Database.Database, lockTimeoutMs: number) {
    this.lock = new WriteLock(db, lockTimeoutMs);
  }

  /** Runs `fn` inside the open group (opening one if needed). */
  write<T>(fn: () => T): T {
    if (this.pending === 0) {
      this.lock.begin();
      this.timer = setTimeout(() => this.flush(), COMMIT_AFTER_MS);
    }
    this.pending += 1;
    try {
      return fn();
    } finally {
      if (this.pending >= LEDGER_BATCH) this.flush();
    }
  }

  /** Called when a group's commit fails: its writes are gone. */
  onFailedCommit(listener: () => void): void {
    this.failureListeners.push(listener);
  }

  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.soon = false;
    if (this.pending === 0) return;
    this.pending = 0;
    const waiting = this.waiting;
    this.waiting = [];
    try {
      this.lock.commit();
    } catch (err) {
      for (const l of this.failureListeners) l();
      for (const w of waiting) w.reject(err as Error);
      throw err;
    }
    for (const w of waiting) w.resolve();
  }

  /**
   * Resolves once every write made so far is committed. A waiter brings the group's commit forward
   * to the end of this turn of the event loop: the writes of that turn still share one commit.
   */
  committed(when: 'soon' | 'with-group' = 'soon'): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    if (when === 'soon' && !this.soon) {
      this.soon = true;
      setImmediate(() => this.flushFor(this.waiting));
    }
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  /** The commit a waiter asked for, unless the group was committed meanwhile (by size or timer). */
  private flushFor(waiting: readonly unknown[]): void {
    if (this.waiting === waiting) this.flush();
  }
}

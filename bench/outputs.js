import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Output directories for timed runs, each one new and none made right after a mass delete.
 *
 * On ext4 without a journal, creating a file skips every inode of its block group freed in the
 * last minute (six minutes while the inode table block is dirty), one by one. Deleting a run's
 * 2,000 files and then timing the next tool in the same directory's group made every file the next
 * tool created pay for that scan. A user writing a corpus meets no such deletions, so the runs must
 * not either: a finished run's directory is moved aside (a rename frees no inode), deleted only
 * when the spent outputs pass `budgetBytes` or the scenario ends, and the parent is marked for
 * spreading (`chattr +T`: new directories go to block groups with free inodes, not the parent's).
 */
export class Outputs {
  #spent;
  #queue = [];
  #bytes = 0;
  #n = 0;

  constructor(parent, budgetBytes = 8 * 2 ** 30) {
    this.parent = parent;
    this.budgetBytes = budgetBytes;
    this.#spent = join(parent, 'spent');
    mkdirSync(parent, { recursive: true });
    // Best effort: without chattr, or on another filesystem, new directories are placed as usual.
    this.spreads = spawnSync('chattr', ['+T', parent], { stdio: 'ignore' }).status === 0;
  }

  /** An empty `dir` with nothing unsynced behind it; `bytes` is about what its last run wrote. */
  fresh(dir, bytes = 0) {
    if (existsSync(dir)) {
      mkdirSync(this.#spent, { recursive: true });
      const to = join(this.#spent, String(this.#n++));
      renameSync(dir, to);
      this.#queue.push({ to, bytes });
      this.#bytes += bytes;
      while (this.#bytes > this.budgetBytes && this.#queue.length > 0) {
        const old = this.#queue.shift();
        rmSync(old.to, { recursive: true, force: true });
        this.#bytes -= old.bytes;
      }
    }
    mkdirSync(dir, { recursive: true });
    execFileSync('sync');
  }

  /** Deletes every spent output (between scenarios, outside any timed run). */
  clear() {
    rmSync(this.#spent, { recursive: true, force: true });
    this.#queue = [];
    this.#bytes = 0;
    execFileSync('sync');
  }
}

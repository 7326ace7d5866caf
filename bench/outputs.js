import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Output directories for timed runs: each run writes into a new directory, in a block group where
 * no inode was just freed, with the memory of the last run's files just freed.
 *
 * Two properties of the benchmark's machine (ext4 without a journal, in a VM that hands free memory
 * back to its host) made deleting the last run's output and timing the next tool in its place
 * charge that tool for the deletion:
 * - Creating a file skips, one by one, every inode of its block group freed in the last minute
 *   (six while the inode table block is dirty). ext4 places a new directory in the group with the
 *   fewest directories, which after a deletion is the group just emptied.
 * - Memory free for a while is returned to the host, and the first write to it is several times
 *   slower (about 2 ms a MiB against 0.2 ms for memory just freed). A run writing into such
 *   memory paid that in whichever thread wrote its files.
 * So: the last run's directory is moved aside, the new one is made (the parent is marked
 * `chattr +T`, so it goes to a group with few directories), and only then are the files of the
 * spent output deleted, its directories kept (their groups keep their directory counts, so no new
 * directory goes there). Nothing is deleted during a timed run, and `clear` removes the rest when
 * the benchmark ends. A user's corpus directory sees neither effect: no mass delete precedes its
 * files, and a long run's page cache recycles memory it used moments before.
 */
export class Outputs {
  #spent;
  #n = 0;

  constructor(parent) {
    this.parent = parent;
    this.#spent = join(parent, 'spent');
    mkdirSync(parent, { recursive: true });
    // Best effort: without chattr, or on another filesystem, new directories are placed as usual.
    this.spreads = spawnSync('chattr', ['+T', parent], { stdio: 'ignore' }).status === 0;
  }

  /** An empty `dir` with nothing unsynced behind it. */
  fresh(dir) {
    const last = existsSync(dir) ? join(this.#spent, String(this.#n++)) : null;
    if (last) {
      mkdirSync(this.#spent, { recursive: true });
      renameSync(dir, last);
    }
    mkdirSync(dir, { recursive: true });
    if (last) unlinkFiles(last);
    execFileSync('sync');
  }

  /** Deletes every spent output (when the benchmark ends). */
  clear() {
    rmSync(this.#spent, { recursive: true, force: true });
  }
}

function unlinkFiles(dir) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) unlinkFiles(p);
    else unlinkSync(p);
  }
}

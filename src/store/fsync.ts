import { close, fsync, open } from 'node:fs';

/**
 * A directory entry (a new link or a removed one) survives power loss only once the directory is
 * fsync'd. Plain callbacks, one promise: this runs once per stored object.
 */
export function fsyncDir(dir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    open(dir, 'r', (err, fd) => {
      if (err) return reject(err);
      fsync(fd, (syncErr) => close(fd, (closeErr) => (syncErr ?? closeErr ? reject(syncErr ?? closeErr) : resolve())));
    });
  });
}

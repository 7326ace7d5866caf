import { close, fsync, open } from 'node:fs';

/**
 * Shard directories stay open for the run, so storing an object costs one fsync of its directory
 * instead of open, fsync and close: two trips to the thread pool fewer per file. A store has at
 * most 256 shards; past MAX_HANDLES (many stores in one process) directories are opened per call.
 */
const MAX_HANDLES = 1024;
const handles = new Map<string, Promise<number>>();

function openDir(dir: string): Promise<number> {
  return new Promise((resolve, reject) => open(dir, 'r', (err, fd) => (err ? reject(err) : resolve(fd))));
}

function fsyncFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fsync(fd, (err) => (err ? reject(err) : resolve())));
}

function closeFd(fd: number): Promise<void> {
  return new Promise((resolve) => close(fd, () => resolve()));
}

/** A directory entry (a new link or a removed one) survives power loss only once the directory is fsync'd. */
export async function fsyncDir(dir: string): Promise<void> {
  let fd = handles.get(dir);
  if (!fd && handles.size >= MAX_HANDLES) {
    const once = await openDir(dir);
    try {
      return await fsyncFd(once);
    } finally {
      await closeFd(once);
    }
  }
  if (!fd) {
    fd = openDir(dir);
    handles.set(dir, fd);
    // A directory that could not be opened is tried again next time.
    fd.catch(() => handles.delete(dir));
  }
  await fsyncFd(await fd);
}

/** Closes the kept directories; called when nothing is being stored any more. */
export async function closeDirHandles(): Promise<void> {
  const all = [...handles.values()];
  handles.clear();
  await Promise.all(all.map((fd) => fd.then(closeFd, () => undefined)));
}

import { open } from 'node:fs/promises';

/** A directory entry (a new link or a removed one) survives power loss only once the directory is fsync'd. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

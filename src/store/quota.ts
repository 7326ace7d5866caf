import { statfs } from 'node:fs/promises';
import { ItemError } from '../errors.js';

/** Refuses a transfer that would leave less than `minFree` bytes on the store's filesystem. */
export async function checkQuota(dir: string, expectedBytes: number, minFree: number): Promise<void> {
  if (minFree <= 0 && expectedBytes <= 0) return;
  const s = await statfs(dir);
  const free = s.bavail * s.bsize;
  if (free - expectedBytes < minFree) {
    throw new ItemError('quota', `free space ${free} minus expected ${expectedBytes} bytes is below --min-free ${minFree}`);
  }
}

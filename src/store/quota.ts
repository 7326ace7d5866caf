import { statfsSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { ItemError } from '../errors.js';

function judge(s: { bavail: number; bsize: number }, expectedBytes: number, minFree: number): void {
  const free = s.bavail * s.bsize;
  if (free - expectedBytes < minFree) {
    throw new ItemError('quota', `free space ${free} minus expected ${expectedBytes} bytes is below --min-free ${minFree}`);
  }
}

/** Refuses a transfer that would leave less than `minFree` bytes on the store's filesystem. */
export async function checkQuota(dir: string, expectedBytes: number, minFree: number): Promise<void> {
  if (minFree <= 0 && expectedBytes <= 0) return;
  judge(await statfs(dir), expectedBytes, minFree);
}

export function checkQuotaSync(dir: string, expectedBytes: number, minFree: number): void {
  if (minFree <= 0 && expectedBytes <= 0) return;
  judge(statfsSync(dir), expectedBytes, minFree);
}

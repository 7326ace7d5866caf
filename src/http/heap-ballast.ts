import { HEAP_BALLAST_SLOTS } from '../config.js';

let ballast: number[] | null = null;

/**
 * Keeps an 8 MiB array alive for the rest of a run that downloads. V8 sets the old generation's
 * next collection point from its live size, and this process's live heap is small (~9 MB) while
 * bodies stream hundreds of MB of socket buffers through it: each young collection then promotes
 * enough to start a full mark-compact, every ~200 ms (20-24 of them in 400 × 1 MiB instead of 1,
 * ~0.5 s of CPU). A larger live heap moves the collection point out of reach. V8's own switch for
 * this (--max-semi-space-size) is a command-line flag, which an npm binary cannot rely on.
 */
export function holdHeapBallast(): void {
  ballast ??= new Array<number>(HEAP_BALLAST_SLOTS).fill(0);
}

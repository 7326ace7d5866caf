import { HEAP_BALLAST_SLOTS } from '../config.js';

let ballast: number[] | null = null;

/**
 * Keeps an 8 MiB array alive for the rest of a run that downloads. V8 sets the old generation's
 * next collection point from its live size, and this process's live heap is small while bodies
 * stream far more socket buffers through it: each young collection then promotes enough to start
 * a full mark-compact (docs/decisions.md has the count). A larger live heap moves the collection point out of reach. V8's own switch for
 * this (--max-semi-space-size) is a command-line flag, which an npm binary cannot rely on.
 */
export function holdHeapBallast(): void {
  ballast ??= new Array<number>(HEAP_BALLAST_SLOTS).fill(0);
}

import { setFlagsFromString } from 'node:v8';
import { HEAP_BALLAST_SLOTS } from './config.js';

/**
 * Process-wide tuning for a run that downloads, in one place, on public Node.js APIs only. Called
 * once by the download command before anything loads undici. Each measure's figure is in
 * docs/decisions.md ("Measurements behind code choices").
 */
export function tuneForTransfers(): void {
  // llhttp (undici's HTTP parser) is WebAssembly. V8 compiles it with its baseline compiler, then
  // recompiles the hot parser with its optimizing one on a helper thread: costly for one huge state
  // machine, and a finished process waits for that compile before it exits. Parsing is a small
  // share of a transfer, so the baseline code is kept. V8 reads the flag when it compiles a module.
  setFlagsFromString('--liftoff-only');
  holdHeapBallast();
}

let ballast: number[] | null = null;

/**
 * Keeps an 8 MiB array alive for the rest of the run. V8 sets the old generation's next collection
 * point from its live size, and this process's live heap is small while bodies stream far more
 * socket buffers through it: each young collection then promotes enough to start a full
 * mark-compact. A larger live heap moves the collection point out of reach. V8's own switch for
 * this (--max-semi-space-size) is a command-line flag, which an npm binary cannot rely on.
 */
function holdHeapBallast(): void {
  ballast ??= new Array<number>(HEAP_BALLAST_SLOTS).fill(0);
}

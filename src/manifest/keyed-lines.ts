import { existsSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { KEY_THREAD_MIN_BYTES, KEY_THREAD_YOUNG_MB } from '../config.js';
import { FatalError, UsageError } from '../errors.js';
import type { ManifestLine } from './read.js';

export const KEY_WIDTH = 64;
/** Batches (one per chunk read, ~64 KiB of lines) the key thread may have waiting: bounds memory. */
export const BATCHES_AHEAD = 8;

/** A line's kind, one character a line in KeyedBatch.kinds. */
export const LineKind = { Empty: '0', Invalid: '1', Item: '2' } as const;

/**
 * The consecutive lines of one chunk of one manifest, judged and keyed. Only strings: typed arrays
 * passed per batch pile up as external memory until a full GC (docs/decisions.md has the figure).
 */
export interface KeyedBatch {
  file: string;
  /** the number of the batch's first line */
  first: number;
  /** the lines' texts joined with newlines (a line never contains one) */
  texts: string;
  /** one LineKind a line */
  kinds: string;
  /** KEY_WIDTH characters a line: the job key of an item line, blanks otherwise */
  keys: string;
  /** lines that could not be judged at all (too long, not UTF-8), by index */
  problems: Record<number, string>;
}

export type KeyWorkerMessage = { batch: KeyedBatch } | { done: true } | { error: string; usage: boolean };

/** The lines of a batch, split the first time a line of it has to be parsed here. */
export class BatchLines {
  private texts: string[] | null = null;
  constructor(readonly b: KeyedBatch) {}

  line(i: number): ManifestLine {
    this.texts ??= this.b.texts.split('\n');
    const problem = this.b.problems[i];
    const line = { file: this.b.file, line: this.b.first + i, text: ownString(this.texts[i]!) };
    return problem === undefined ? line : { ...line, problem };
  }

  key(i: number): string {
    return this.b.keys.slice(i * KEY_WIDTH, (i + 1) * KEY_WIDTH);
  }
}

/**
 * A copy of a line that does not keep its batch alive. `split` gives slices of the batch's text,
 * and an item planned from a bare URL line keeps that string as its URL for as long as it waits
 * in the pool: on a re-run with one new line in a thousand, each waiting item would hold a whole
 * 64 KiB batch. Slicing a concatenation makes V8 first copy it into a string of its own, which
 * is all the slice then refers to (~0.1 µs).
 */
function ownString(s: string): string {
  return (s + ' ').slice(0, -1);
}

const WORKER = new URL('./key-worker.js', import.meta.url);

/**
 * Whether the manifests are worth a second thread: regular files (stdin stays with the main
 * thread) of KEY_THREAD_MIN_BYTES or more in all, and a built worker beside this module (the
 * sources run under the tests have none).
 */
export function wantsKeyThread(files: readonly string[]): boolean {
  let bytes = 0;
  for (const f of files) {
    if (f === '-') return false;
    const st = statSync(f, { throwIfNoEntry: false });
    if (!st?.isFile()) return false;
    bytes += st.size;
  }
  return bytes >= KEY_THREAD_MIN_BYTES && existsSync(fileURLToPath(WORKER));
}

/** The manifests' lines in order, batch by batch, judged and keyed on a second thread. */
export async function* keyedBatches(files: readonly string[]): AsyncGenerator<KeyedBatch> {
  const worker = new Worker(WORKER, { workerData: [...files], resourceLimits: { maxYoungGenerationSizeMb: KEY_THREAD_YOUNG_MB } });
  const queue: KeyWorkerMessage[] = [];
  let wake: (() => void) | null = null;
  let failure: Error | null = null;
  const notify = (): void => {
    wake?.();
    wake = null;
  };
  worker.on('message', (m: KeyWorkerMessage) => {
    queue.push(m);
    notify();
  });
  worker.on('error', (err) => {
    failure = err;
    notify();
  });
  worker.on('exit', (code) => {
    failure ??= new FatalError(`the manifest thread ended early (exit ${code})`);
    notify();
  });
  try {
    for (;;) {
      while (queue.length === 0) {
        if (failure) throw failure;
        await new Promise<void>((resolve) => (wake = resolve));
      }
      const m = queue.shift()!;
      if ('done' in m) return;
      if ('error' in m) throw m.usage ? new UsageError(m.error) : new Error(m.error);
      worker.postMessage(1);
      yield m.batch;
    }
  } finally {
    worker.removeAllListeners('exit');
    await worker.terminate();
  }
}

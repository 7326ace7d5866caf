import { parentPort, workerData } from 'node:worker_threads';
import { UsageError } from '../errors.js';
import { bareUrlKey, parseLine } from './parse.js';
import { readManifests } from './read.js';
import { BATCHES_AHEAD, KEY_WIDTH, LineKind, type KeyedBatch, type KeyWorkerMessage } from './keyed-lines.js';

/**
 * The second thread of a large run: reads the manifests exactly as the main thread would, judges
 * each line and computes each item's job key. The main thread then answers done items by key and
 * parses only the lines the ledger does not already hold as done.
 */
const port = parentPort!;
const files = workerData as string[];
let credit = BATCHES_AHEAD;
let wake: (() => void) | null = null;
port.on('message', (n: number) => {
  credit += n;
  wake?.();
  wake = null;
});

const NO_KEY = ' '.repeat(KEY_WIDTH);

async function run(): Promise<void> {
  // Nothing of a line outlives its batch here: lines may be slices of their chunk's text.
  for await (const lines of readManifests(files, true)) {
    const texts: string[] = [];
    let kinds = '';
    const keys: string[] = [];
    const problems: Record<number, string> = {};
    let file = '';
    let first = 0;
    // Each chunk read belongs to one manifest, and its lines are consecutive.
    for (const line of lines) {
      if (texts.length === 0) {
        file = line.file;
        first = line.line;
      }
      if (line.problem) problems[texts.length] = line.problem;
      texts.push(line.text);
      const bare = bareUrlKey(line);
      if (bare !== null) {
        kinds += LineKind.Item;
        keys.push(bare);
        continue;
      }
      const parsed = parseLine(line);
      kinds += parsed.kind === 'empty' ? LineKind.Empty : parsed.kind === 'invalid' ? LineKind.Invalid : LineKind.Item;
      keys.push(parsed.kind === 'item' ? parsed.item.key : NO_KEY);
    }
    if (texts.length === 0) continue;
    const batch: KeyedBatch = { file, first, texts: texts.join('\n'), kinds, keys: keys.join(''), problems };
    while (credit === 0) await new Promise<void>((resolve) => (wake = resolve));
    credit -= 1;
    port.postMessage({ batch } satisfies KeyWorkerMessage);
  }
}

run().then(
  () => port.postMessage({ done: true } satisfies KeyWorkerMessage),
  (err: unknown) => port.postMessage({ error: (err as Error).message, usage: err instanceof UsageError } satisfies KeyWorkerMessage),
);

import { invalidRecord, type DownloadRecord } from '../record.js';
import { parseLine, type Item } from './parse.js';
import { readManifests } from './read.js';

/** What a visitor returns: nothing to go on at once, a promise to wait for first, or false to stop. */
export type Visited = void | false | Promise<void | false>;

/**
 * Visits the items of the manifests, in order. Blank and comment lines are skipped; each invalid
 * line is reported as an `invalid` record in its place and the reading goes on. The visitor is
 * awaited only when it returns a promise, so a run of lines that need no waiting (a re-run's
 * skipped lines) is one synchronous loop over each chunk read.
 */
export async function eachItem(
  manifests: readonly string[],
  reporter: { planned(): void; record(r: DownloadRecord): void },
  visit: (item: Item) => Visited,
): Promise<void> {
  for await (const lines of readManifests(manifests)) {
    for (const line of lines) {
      const parsed = parseLine(line);
      if (parsed.kind === 'empty') continue;
      reporter.planned();
      if (parsed.kind === 'invalid') {
        reporter.record(invalidRecord(parsed.source, 'invalid_line', parsed.message));
        continue;
      }
      let next = visit(parsed.item);
      if (next instanceof Promise) next = await next;
      if (next === false) return;
    }
  }
}

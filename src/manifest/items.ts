import { invalidRecord, type DownloadRecord } from '../record.js';
import { BatchLines, keyedBatches, LineKind, wantsKeyThread } from './keyed-lines.js';
import { parseLine, sourceOf, type Item } from './parse.js';
import { readManifests, type ManifestLine } from './read.js';

/** What a visitor returns: nothing to go on at once, a promise to wait for first, or false to stop. */
export type Visited = void | false | Promise<void | false>;

type Reporter = { planned(): void; record(r: DownloadRecord): void };

/**
 * Answers an item line from its job key alone (a done job's `skipped` record, a repeated line), or
 * returns null when the line has to be parsed and visited.
 */
export type Shortcut = (key: string, source: string) => Visited | null;

/**
 * Visits the items of the manifests, in order. Blank and comment lines are skipped; each invalid
 * line is reported as an `invalid` record in its place and the reading goes on. The visitor is
 * awaited only when it returns a promise, so a run of lines that need no waiting (a re-run's
 * skipped lines) is one synchronous loop over each chunk read.
 *
 * With a shortcut and large manifests, a second thread reads, parses and keys the lines ahead;
 * this thread then parses only the lines the shortcut cannot answer by key.
 */
export async function eachItem(manifests: readonly string[], reporter: Reporter, visit: (item: Item) => Visited, shortcut?: Shortcut): Promise<void> {
  if (shortcut && wantsKeyThread(manifests)) return eachKeyedItem(manifests, reporter, visit, shortcut);
  for await (const lines of readManifests(manifests)) {
    for (const line of lines) {
      const next = visitLine(line, reporter, visit);
      if ((next instanceof Promise ? await next : next) === false) return;
    }
  }
}

async function eachKeyedItem(manifests: readonly string[], reporter: Reporter, visit: (item: Item) => Visited, shortcut: Shortcut): Promise<void> {
  for await (const b of keyedBatches(manifests)) {
    const lines = new BatchLines(b);
    for (let i = 0; i < b.kinds.length; i += 1) {
      const kind = b.kinds[i];
      if (kind === LineKind.Empty) continue;
      let next: Visited | null = null;
      if (kind === LineKind.Item) {
        reporter.planned();
        next = shortcut(lines.key(i), sourceOf(b.file, b.first + i));
        if (next === null) next = visitParsed(parseLine(lines.line(i)), reporter, visit);
      } else {
        next = visitLine(lines.line(i), reporter, visit);
      }
      if ((next instanceof Promise ? await next : next) === false) return;
    }
  }
}

function visitLine(line: ManifestLine, reporter: Reporter, visit: (item: Item) => Visited): Visited {
  const parsed = parseLine(line);
  if (parsed.kind === 'empty') return;
  reporter.planned();
  return visitParsed(parsed, reporter, visit);
}

function visitParsed(parsed: ReturnType<typeof parseLine>, reporter: Reporter, visit: (item: Item) => Visited): Visited {
  if (parsed.kind === 'item') return visit(parsed.item);
  if (parsed.kind === 'invalid') reporter.record(invalidRecord(parsed.source, 'invalid_line', parsed.message));
}

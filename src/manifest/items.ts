import { invalidRecord, type DownloadRecord } from '../record.js';
import { parseLine, type Item } from './parse.js';
import { readManifests } from './read.js';

/**
 * The items of the manifests, in order. Blank and comment lines are skipped; each invalid line
 * is reported as an `invalid` record right away and the reading goes on.
 */
export async function* manifestItems(
  manifests: readonly string[],
  reporter: { planned(): void; record(r: DownloadRecord): void },
): AsyncGenerator<Item> {
  for await (const line of readManifests(manifests)) {
    const parsed = parseLine(line);
    if (parsed.kind === 'empty') continue;
    reporter.planned();
    if (parsed.kind === 'invalid') reporter.record(invalidRecord(parsed.source, 'invalid_line', parsed.message));
    else yield parsed.item;
  }
}

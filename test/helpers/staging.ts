import { stagedFiles } from '../../src/store/staging.js';

/** Names of the files left in a store's staging directories (parts and anything else). */
export async function stagedNames(out: string): Promise<string[]> {
  return (await stagedFiles(out)).map((f) => f.path.split('/').pop()!).sort();
}

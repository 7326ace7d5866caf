import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | null = null;

/**
 * A file shipped with the package (package.json, config/). Found by walking up from this module,
 * because the code runs from three depths: src/ under the tests, dist/, and the bundle in
 * dist/bundle/ that the binary loads.
 */
export function packageFile(relative: string): string {
  if (root === null) {
    let dir = dirname(fileURLToPath(import.meta.url));
    while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
    root = dir;
  }
  return join(root, relative);
}

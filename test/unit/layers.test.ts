import { readdir, readFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = resolve(import.meta.dirname, '../../src');

async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await sources(p)));
    else if (e.name.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** The layer of a source file: cli, then commands, then the pipeline, then the parts it uses. */
function layer(file: string): number {
  const top = relative(SRC, file).split('/')[0]!;
  if (top === 'cli.ts') return 0;
  if (top === 'commands') return 1;
  if (top === 'download' || top === 'pool.ts' || top === 'wait-line.ts' || top === 'report.ts' || top === 'progress.ts' || top === 'telemetry.ts' || top === 'metrics.ts') return 2;
  return 3;
}

describe('layering', () => {
  it('imports go one way: cli, commands, pipeline, then store, ledger, http, hosts and manifest; no command imports another', async () => {
    const wrong: string[] = [];
    for (const file of await sources(SRC)) {
      const text = await readFile(file, 'utf8');
      for (const m of text.matchAll(/^import[^;]*?from '(\.[^']+)'/gm)) {
        const target = resolve(file, '..', m[1]!.replace(/\.js$/, '.ts'));
        const from = layer(file);
        const to = layer(target);
        const sibling = from === 1 && to === 1;
        if (to < from || sibling) wrong.push(`${relative(SRC, file)} -> ${relative(SRC, target)}`);
      }
    }
    expect(wrong).toEqual([]);
  });
});

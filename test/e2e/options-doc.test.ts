import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SHARED_OPTIONS, envName, type OptionSpec } from '../../src/config.js';
// The generator reads the built table (dist/): `npm test` builds first.
import { COMMANDS, defaultOf, flagOf, renderOptionsDoc } from '../../scripts/options-doc.js';
import { runCli } from '../helpers/cli.js';

describe('options: one table, its docs and --help agree', () => {
  it('docs/options.md is what the table generates (npm run docs:options)', async () => {
    const onDisk = await readFile(resolve(import.meta.dirname, '../../docs/options.md'), 'utf8');
    expect(onDisk).toBe(renderOptionsDoc());
  });

  it.each(COMMANDS.map(([name, specs]) => [name, specs]))('%s --help lists every option of the table with its default and variable', async (name: string, specs: readonly OptionSpec[]) => {
    const help = (await runCli([name, '--help'])).stdout.replace(/\s+/g, ' ');
    for (const spec of [...SHARED_OPTIONS, ...specs]) {
      expect(help, spec.flag).toContain(flagOf(spec));
      expect(help, spec.flag).toContain(`(env ${envName(spec.kind === 'negbool' ? `no-${spec.flag}` : spec.flag)})`);
      if (defaultOf(spec)) expect(help, spec.flag).toContain(`[${defaultOf(spec)}]`);
    }
    // Nothing in the help that the table does not hold.
    const flags = [...help.matchAll(/ (--[a-z][a-z0-9-]+)/g)].map((m) => m[1]);
    const known = new Set([...SHARED_OPTIONS, ...specs].map((s) => (s.kind === 'negbool' ? `--no-${s.flag}` : `--${s.flag}`)).concat('--help'));
    expect(flags.filter((f) => !known.has(f!))).toEqual([]);
  });
});

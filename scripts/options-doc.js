#!/usr/bin/env node
// docs/options.md is generated from the one table of options and defaults (src/config.ts):
// `npm run docs:options` writes it, and a test fails when the file, the table and --help disagree.
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DOWNLOAD_OPTIONS, EXPORT_OPTIONS, RECONCILE_OPTIONS, SHARED_OPTIONS, STATUS_OPTIONS, envName } from '../dist/config.js';

export const COMMANDS = [
  ['download', DOWNLOAD_OPTIONS],
  ['reconcile', RECONCILE_OPTIONS],
  ['status', STATUS_OPTIONS],
  ['export', EXPORT_OPTIONS],
];

export function flagOf(spec) {
  const long = spec.kind === 'negbool' ? `--no-${spec.flag}` : `--${spec.flag}`;
  return `${spec.short ? `-${spec.short}, ` : ''}${long}${spec.arg ? ` <${spec.arg}>` : ''}`;
}

export function defaultOf(spec) {
  if (spec.kind === 'bool' || spec.kind === 'negbool' || spec.default === undefined || spec.default === '') return '';
  return String(spec.default);
}

function table(specs) {
  // Inside code spans only the pipe needs escaping; in prose, angle brackets too.
  const code = (s) => `\`${s.replace(/\|/g, '\\|')}\``;
  const text = (s) => s.replace(/\|/g, '\\|').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const rows = specs.map((s) => `| ${code(flagOf(s))} | ${defaultOf(s) ? code(defaultOf(s)) : ''} | ${code(envName(s.kind === 'negbool' ? `no-${s.flag}` : s.flag))} | ${text(s.help)} |`);
  return ['| flag | default | environment | meaning |', '|---|---|---|---|', ...rows].join('\n');
}

export function renderOptionsDoc() {
  const parts = [
    '# Options',
    '',
    '<!-- Generated from src/config.ts by `npm run docs:options`; a test checks it. Do not edit by hand. -->',
    '',
    'Every option can also come from the environment variable shown (`DOCSTOKG_<FLAG>`, upper case,',
    'dashes as underscores); a flag on the command line wins. Boolean variables take `1/true/yes/on`',
    'or `0/false/no/off`; repeatable flags take a comma-separated list (`DOCSTOKG_DENY_HOST=a.org,*.b.org`).',
    'Sizes accept `B`, `KiB`, `MiB`, `GiB`, `TiB` (or `K`, `M`, `G`, `T`, all binary); seconds may be',
    'fractional (`0.5`). An invalid value is a usage error (exit 2) whose message names the flag.',
    '',
    '## Every command',
    '',
    table(SHARED_OPTIONS),
  ];
  for (const [name, specs] of COMMANDS) {
    if (specs.length === 0) continue;
    parts.push('', `## \`${name}\``, '', table(specs));
  }
  return `${parts.join('\n')}\n`;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const target = join(resolve(import.meta.dirname, '..'), 'docs', 'options.md');
  writeFileSync(target, renderOptionsDoc());
  console.log(`wrote ${target}`);
}

// Bundles the compiled CLI (dist/) into dist/bundle/, which bin/docstokg.js loads: one file per
// command instead of ~150 modules resolved and compiled one by one at every start.
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import { build } from 'esbuild';
import { parse } from 'yaml';

// The shipped config files (config/*.yaml), parsed now and keyed by their text: a run reading one
// of them unchanged takes the value instead of parsing it again (see src/hosts/yaml.ts).
const shippedYaml = {};
for (const name of readdirSync('config').filter((n) => n.endsWith('.yaml'))) {
  const text = readFileSync(`config/${name}`, 'utf8');
  const value = parse(text);
  const json = JSON.stringify(value);
  // Only what JSON carries unchanged: a value it would alter is parsed at run time instead.
  if (isDeepStrictEqual(JSON.parse(json), value)) shippedYaml[text] = json;
}

// Chunk names carry a content hash: a stale chunk would otherwise stay beside the new ones.
rmSync('dist/bundle', { recursive: true, force: true });
await build({
  // The manifest key thread and the PostgreSQL ledger's thread are workers: their own entries,
  // beside the CLI (see manifest/keyed-lines.ts, ledger/postgres/bridge.ts).
  entryPoints: { cli: 'dist/cli.js', 'key-worker': 'dist/manifest/key-worker.js', 'pg-worker': 'dist/ledger/postgres/pg-worker.js' },
  outdir: 'dist/bundle',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // A native addon: loaded from node_modules at run time.
  // The S3 SDK: loaded from node_modules, and only by a run with an s3:// store.
  // The PostgreSQL driver: loaded from node_modules, and only by the ledger thread of a postgres:// --db.
  external: ['better-sqlite3', '@aws-sdk/*', 'pg'],
  // Bundled CommonJS dependencies (undici, commander) call require() for Node's own modules.
  banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
  define: { DOCSTOKG_SHIPPED_YAML: JSON.stringify(shippedYaml) },
  logLevel: 'warning',
});

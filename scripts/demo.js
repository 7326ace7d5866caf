#!/usr/bin/env node
// A download that needs no network: a local origin serves sample PDFs (and one HTML page posing
// as a PDF), and the real docstokg binary fetches them into ./demo-out.
import { spawn } from 'node:child_process';
import { rm, writeFile, mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { startOrigin } from '../dist/fixtures/origin.js';
import { samplePdf } from '../dist/fixtures/pdf.js';
import { resolversYaml, serveScholarly } from '../dist/fixtures/scholarly.js';

const root = resolve(import.meta.dirname, '..');
const out = join(root, 'demo-out');
const bin = join(root, 'bin', 'docstokg.js');

function run(args) {
  return new Promise((done) => {
    const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('close', (code) => done(code));
  });
}

const origin = await startOrigin();
const lines = [];
for (let i = 1; i <= 24; i += 1) {
  origin.set(`/papers/${i}.pdf`, { body: samplePdf(`demo paper ${i}`, 20_000 + i * 1000) });
  lines.push(JSON.stringify({ id: `paper-${i}`, url: origin.url(`/papers/${i}.pdf`) }));
}
origin.set('/login.pdf', { body: Buffer.from('<html><body>Sign in to read this article</body></html>'.padEnd(3000)), headers: { 'content-type': 'application/pdf' } });
origin.set('/moved', { body: Buffer.alloc(0), redirect: '/papers/1.pdf' });
lines.push(JSON.stringify({ id: 'paywalled', url: origin.url('/login.pdf') }));
lines.push(JSON.stringify({ id: 'https://openalex.org/W2741809807', best_oa_location: { pdf_url: origin.url('/moved') }, locations: [] }));
lines.push(origin.url('/papers/2.pdf'));
// Works named by identifier, placed by local fakes of OpenAlex, Unpaywall, Crossref, arXiv and
// Europe PMC (and one publisher landing page that names its PDF in citation_pdf_url).
for (const work of serveScholarly(origin)) lines.push(work.line);
lines.push('# comments and blank lines are skipped', '');

await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
const manifest = join(out, 'manifest.jsonl');
await writeFile(manifest, `${lines.join('\n')}\n`);
const resolvers = join(out, 'resolvers.yaml');
await writeFile(resolvers, resolversYaml(origin));
const resolving = ['--resolvers', resolvers, '--mailto', 'demo@example.org'];

console.log(`demo: origin on ${origin.url('/')}, manifest ${manifest}\n`);
console.log('demo: first run (one HTML page posing as a PDF is refused; the same bytes under two ids are stored once;');
console.log('      DOIs, OpenAlex, arXiv and PMC ids are resolved; a landing page robots.txt disallows is not read)');
await run(['download', manifest, '-o', out, '--link-dir', join(out, 'by-id'), '--verbose', ...resolving]);
console.log('\ndemo: second run: every item already done is skipped without a request; the failed one (not a PDF: a permanent failure) is not asked again without --retry-failed');
const before = origin.requests.length;
await run(['download', manifest, '-o', out, ...resolving]);
console.log(`demo: requests sent by the second run: ${origin.requests.length - before}\n`);
await run(['status', '-o', out]);
console.log(`\ndemo: objects are in ${out}/<aa>/<sha256>.pdf, views by id in ${out}/by-id/`);
await origin.close();

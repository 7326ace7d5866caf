import { createWriteStream, existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import { jobKey } from '/work/main/dist/manifest/parse.js';
import { openDatabase } from '/work/main/dist/ledger/open.js';
const N = Number(process.argv[2] ?? 200000);
const base = 'http://127.0.0.1:9';
const out = createWriteStream('/tmp/prof/m.txt');
for (let i = 0; i < N; i++) out.write(`${base}/w/${i}.pdf\n`);
out.end();
const db = '/tmp/prof/done.sqlite';
openDatabase(db).close();
const d = new Database(db);
const ins = d.prepare(`INSERT INTO jobs (key, item_id, canonical_url, urls, state, status, sha256, bytes, path, url, final_url, http_status, attempts, created_at, updated_at)
    VALUES (?, ?, ?, ?, 'done', 'downloaded', ?, 65536, ?, ?, ?, 200, 1, 0, 0)`);
d.transaction(() => { for (let i = 0; i < N; i++) { const url = `${base}/w/${i}.pdf`; const sha = jobKey('sha', [url]); ins.run(jobKey(url, [url]), url, url, JSON.stringify([url]), sha, `${sha.slice(0,2)}/${sha}.pdf`, url, url); } })();
d.pragma('wal_checkpoint(TRUNCATE)');
d.close();

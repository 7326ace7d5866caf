import Database from 'better-sqlite3';
import { jobKey } from '../dist/manifest/parse.js';
const N = 200000, base = 'http://127.0.0.1:9';
const keys = []; for (let i = 0; i < N; i++) { const u = `${base}/w/${i}.pdf`; keys.push(jobKey(u, [u])); }
const db = new Database('/tmp/prof/done.orig', { readonly: true });
db.pragma(`cache_size = -16384`);
const J = `json_object('id', item_id, 'url', coalesce(url, canonical_url), 'canonical_url', canonical_url, 'final_url', final_url,
          'status', 'skipped', 'reason', reason, 'http_status', http_status, 'sha256', sha256, 'bytes', bytes, 'path', path,
          'content_type', content_type, 'etag', etag, 'last_modified', last_modified, 'resumed_from', 0, 'attempts', 0,
          'elapsed_ms', 0, 'source', 'x')`;
for (const sql of ['SELECT rowid FROM jobs WHERE key = ?', 'SELECT state FROM jobs WHERE key = ?', `SELECT state, ${J} FROM jobs WHERE key = ?`, `SELECT state, item_id, url, canonical_url, final_url, reason, http_status, sha256, bytes, path, content_type, etag, last_modified FROM jobs WHERE key = ?`]) {
  const st = db.prepare(sql);
  let t = performance.now();
  for (const k of keys) st.get(k);
  console.log(sql.slice(0, 40), ((performance.now() - t) * 1000 / N).toFixed(1), 'us');
}
const ids = db.prepare('SELECT rowid FROM jobs WHERE key = ?').pluck();
const rowids = keys.map(k => ids.get(k));
const st = db.prepare(`SELECT state, ${J} FROM jobs WHERE rowid = ?`);
let t = performance.now(); for (const r of rowids) st.get(r); console.log('json by rowid', ((performance.now() - t) * 1000 / N).toFixed(1), 'us');
{
const db2 = new Database('/tmp/prof/done.orig', { readonly: true });
db2.pragma('mmap_size = 1073741824');
const st2 = db2.prepare(`SELECT state, ${J} FROM jobs WHERE key = ?`);
let t2 = performance.now(); for (const k of keys) st2.get(k); console.log('mmap json by key', ((performance.now() - t2) * 1000 / N).toFixed(1), 'us');
}

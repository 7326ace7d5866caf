import { spawn } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { jobKey } from '../../src/manifest/parse.js';
import { objectPath, partPath } from '../../src/store/paths.js';
import { BIN, jsonl, originAndWorkspace, runCli } from '../helpers/cli.js';
import { samplePdf, sha256Hex } from '../helpers/origin.js';

/**
 * A body the process had whole when it was killed (a part at full size, or already moved into the
 * store) is never asked for in full again: the next run finalizes it from its part, proves it with
 * a ranged request, or finds the object. The kill lands a few milliseconds after the origin sent
 * the third body; the sweep of delays covers the steps after a body ends (part fsync, stream op,
 * finalize op, rename, the ledger's commit).
 */
const DELAYS_MS = [0, 3, 6, 10, 15, 20, 30, 45, 70, 100];

describe('kill -9 right after a body is complete', () => {
  const env = originAndWorkspace();

  it('never fetches a received body in full again', { timeout: 30_000 + DELAYS_MS.length * 8_000 }, async () => {
    for (const [cycle, delay] of DELAYS_MS.entries()) {
      const where = `kill ${delay} ms after the third body`;
      // Large bodies commit their validators before the first byte; small ones when they end.
      const specs = Array.from({ length: 8 }, (_, i) => {
        const body = samplePdf(`received ${cycle} ${i}`, i % 2 === 0 ? 400_000 : 120_000);
        return { id: `r${i}`, path: `/received/${cycle}/${i}`, body };
      });
      for (const s of specs) env.origin.set(s.path, { body: s.body, etag: `"r${cycle}-${s.id}"`, ranges: true });
      const manifest = await env.ws.file(`received${cycle}.jsonl`, jsonl(specs.map((s) => ({ id: s.id, url: env.origin.url(s.path) }))));
      const out = join(env.ws.dir, `received${cycle}`);
      const args = ['download', manifest, '-o', out, '-c', '2', '--no-progress', '-q'];

      const first = env.origin.requests.length;
      const child = spawn(process.execPath, [BIN, ...args], { stdio: 'ignore' });
      const closed = new Promise((r) => child.on('close', r));
      let killedAt = 0;
      const watch = setInterval(() => {
        const sent = env.origin.requests.slice(first).filter((q) => q.finishedAt !== undefined && q.status === 200);
        if (sent.length < 3 || killedAt) return;
        killedAt = -1;
        setTimeout(() => {
          killedAt = Date.now();
          child.kill('SIGKILL');
        }, delay);
      }, 1);
      await closed;
      clearInterval(watch);

      // What the process held whole when it died: a part at full size, or the object itself.
      const whole = new Set<string>();
      for (const s of specs) {
        const key = jobKey(s.id, [env.origin.url(s.path)]);
        const part = await stat(partPath(out, key)).catch(() => null);
        const object = await stat(objectPath(out, sha256Hex(s.body))).catch(() => null);
        if (part?.size === s.body.length || object) whole.add(s.path);
        if (process.env.CRASH_DEBUG) console.error(where, s.id, part?.size, !!object);
      }
      expect(whole.size, where).toBeGreaterThan(0);

      const rec = await runCli(['reconcile', '-o', out, '--json']);
      expect(rec.code, `${where}: ${rec.stderr}`).toBe(0);
      const before = env.origin.requests.length;
      const rerun = await runCli([...args.filter((a) => a !== '-q'), '--json']);
      expect(rerun.code, `${where}: ${rerun.stderr}`).toBe(0);
      for (const s of specs) {
        const r = rerun.records.find((x) => x.id === s.id)!;
        expect(r.sha256, `${where}: ${s.id}`).toBe(sha256Hex(s.body));
        if (!whole.has(s.path)) continue;
        const full = env.origin.requests.slice(before).filter((q) => q.path === s.path && q.status === 200);
        expect(full, `${where}: ${s.id} (${s.body.length} bytes) was whole at the kill, then fetched in full again`).toEqual([]);
      }
    }
  });
});

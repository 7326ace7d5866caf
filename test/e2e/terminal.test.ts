import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BIN, originAndWorkspace } from '../helpers/cli.js';
import { samplePdf } from '../helpers/origin.js';

const hasScript = spawnSync('sh', ['-c', 'command -v script']).status === 0;

/** The progress bar on a real pseudo-terminal (util-linux `script` provides one). */
describe.skipIf(!hasScript)('progress bar on a terminal', () => {
  const env = originAndWorkspace();

  it('clears its last frame before the summary, shows a finite ETA, and keeps -v lines above it', { timeout: 30_000 }, async () => {
    const { origin, ws } = env;
    const urls = Array.from({ length: 40 }, (_, i) => {
      origin.set(`/tty/${i}.pdf`, { body: samplePdf(`tty ${i}`, 3000), trickle: { chunk: 500, ms: 30 } });
      return origin.url(`/tty/${i}.pdf`);
    });
    const manifest = await ws.file('tty.txt', `${urls.join('\n')}\n`);
    const cmd = `${process.execPath} ${BIN} download ${manifest} -o ${join(ws.dir, 'tty')} -c 8 -v`;
    // Not spawnSync: the origin runs on this thread's event loop.
    const out = await new Promise<string>((resolve) => {
      const child = spawn('script', ['-qfec', cmd, '/dev/null'], { stdio: ['pipe', 'pipe', 'inherit'] });
      let text = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (text += d));
      child.on('close', () => resolve(text));
    });
    expect(out).toMatch(/\d+\/40 items/);
    expect(out).not.toMatch(/ETA (NaN|Infinity|NF|INF)/);
    // After the last frame: the erase sequence, then only the summary.
    const tail = out.slice(out.lastIndexOf('\u001b[0J') + 4);
    expect(tail).toMatch(/^docstokg: 40 downloaded; [\d.]+ KiB in [\d.]+ s\r?\n$/);
    // -v lines are written above the bar, one per item.
    expect(out.match(/downloaded http:\/\/127\.0\.0\.1:\d+\/tty\/\d+\.pdf/g)).toHaveLength(40);
  });
});

import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export const sets = {
  small: { name: 'small', count: 2000, size: 64 * 1024, label: '64 KiB' },
  medium: { name: 'medium', count: 400, size: 1024 * 1024, label: '1 MiB' },
  large: { name: 'large', count: 4, size: 256 * 1024 * 1024, label: '256 MiB' },
};
for (const s of Object.values(sets)) s.files = Array.from({ length: s.count }, (_, i) => `${i}.pdf`);

/** Random bodies with a PDF header and trailer: every file distinct, none compressible. */
function writePdf(path, size) {
  const fd = openSync(path, 'w');
  const head = Buffer.from('%PDF-1.4\n%bench\n');
  const tail = Buffer.from('\n%%EOF\n');
  writeSync(fd, head);
  let left = size - head.length - tail.length;
  while (left > 0) {
    const n = Math.min(left, 4 * 1024 * 1024);
    writeSync(fd, randomBytes(n));
    left -= n;
  }
  writeSync(fd, tail);
  closeSync(fd);
}

/** One file of a set (the scale measures resume /large/0.pdf even when the large set is not run). */
export function makeFile(dataDir, name, index) {
  const s = sets[name];
  const dir = join(dataDir, name);
  mkdirSync(dir, { recursive: true });
  const p = join(dir, s.files[index]);
  if (!existsSync(p) || statSync(p).size !== s.size) writePdf(p, s.size);
}

export function makeSets(dataDir, names) {
  for (const name of names) {
    const s = sets[name];
    const dir = join(dataDir, name);
    mkdirSync(dir, { recursive: true });
    for (const f of s.files) {
      const p = join(dir, f);
      if (!existsSync(p) || statSync(p).size !== s.size) writePdf(p, s.size);
    }
  }
}

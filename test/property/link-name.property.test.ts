import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { safeName } from '../../src/store/link.js';

const hostileId = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 300 }),
  fc.constantFrom('../../etc/passwd', '/etc/passwd', '..', '.', '', 'a\0b', 'CON', 'con.txt', 'LPT1', 'nul.pdf', '-rf', '.bashrc', '10.1000/xyz', 'W1', 'w1'),
  fc.array(fc.constantFrom('..', '/', '\\', '\0', 'a', '.', ':', 'é', ' '), { maxLength: 40 }).map((a) => a.join('')),
);

describe('safeName (properties)', () => {
  it('is one plain file name: no separators, no dot names, no hidden or dash start, bounded length', () => {
    fc.assert(
      fc.property(hostileId, (id) => {
        const n = safeName(id);
        expect(n).toMatch(/^[A-Za-z0-9_][A-Za-z0-9._-]*\.pdf$/);
        expect(Buffer.byteLength(n)).toBeLessThanOrEqual(255);
        expect(n).not.toMatch(/^(con|prn|aux|nul|com\d|lpt\d)(\.|$)/i);
      }),
      { numRuns: 5000 },
    );
  });

  it('gives different ids different names, even when they sanitize alike', () => {
    fc.assert(
      fc.property(hostileId, hostileId, (a, b) => {
        if (a !== b) expect(safeName(a)).not.toBe(safeName(b));
      }),
      { numRuns: 5000 },
    );
  });

  it('cannot be made to take another id\'s name by writing that name as an id', () => {
    for (const id of ['a/b', '../x', 'x'.repeat(300)]) {
      const taken = safeName(id).slice(0, -4);
      expect(safeName(taken)).not.toBe(safeName(id));
    }
  });
});

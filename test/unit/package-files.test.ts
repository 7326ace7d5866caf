import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { builtinConfig } from '../../src/hosts/policy.js';
import { packageFile } from '../../src/package-files.js';

describe('packageFile', () => {
  it('finds the package root from the sources (the bundle and dist/ are covered by the e2e runs)', () => {
    const pkg = JSON.parse(readFileSync(packageFile('package.json'), 'utf8')) as { name: string };
    expect(pkg.name).toBe('docstokg');
    expect(existsSync(builtinConfig('ratelimits.default.yaml'))).toBe(true);
    expect(existsSync(builtinConfig('breakers.default.yaml'))).toBe(true);
  });
});

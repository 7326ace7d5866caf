import { spawn } from 'node:child_process';
import { hostname } from 'node:os';
import { describe, expect, it } from 'vitest';
import { isDeadLocalOwner, newOwnerId } from '../../src/ledger/owner.js';

describe('lease owners', () => {
  it('names host and pid', () => {
    expect(newOwnerId()).toMatch(new RegExp(`^${hostname()}:${process.pid}:[0-9a-f-]{36}$`));
  });

  it('knows a killed local process is dead, a live one or a remote one is not', async () => {
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    const owner = `${hostname()}:${child.pid}:x`;
    expect(isDeadLocalOwner(owner)).toBe(false);
    const closed = new Promise((r) => child.on('close', r));
    child.kill('SIGKILL');
    await closed;
    expect(isDeadLocalOwner(owner)).toBe(true);
    expect(isDeadLocalOwner(`another-host:${child.pid}:x`)).toBe(false);
    expect(isDeadLocalOwner(newOwnerId())).toBe(false);
    expect(isDeadLocalOwner(null)).toBe(false);
    expect(isDeadLocalOwner('garbage')).toBe(false);
  });
});

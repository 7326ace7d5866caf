import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { HostPool } from '../../src/pool.js';

describe('HostPool', () => {
  it('never exceeds the total or the per-host limit, and keeps other hosts busy', async () => {
    const pool = new HostPool(4, 2, undefined, Date.now, 8);
    let active = 0;
    let peak = 0;
    const perHost = new Map<string, number>();
    const peakHost = new Map<string, number>();
    const order: string[] = [];
    const task = (host: string) => ({
      host,
      abandon: () => {},
      run: async () => {
        active += 1;
        peak = Math.max(peak, active);
        perHost.set(host, (perHost.get(host) ?? 0) + 1);
        peakHost.set(host, Math.max(peakHost.get(host) ?? 0, perHost.get(host)!));
        order.push(host);
        await sleep(host === 'slow' ? 30 : 5);
        perHost.set(host, perHost.get(host)! - 1);
        active -= 1;
      },
    });
    for (let i = 0; i < 10; i += 1) await pool.add(task('slow'));
    for (let i = 0; i < 10; i += 1) await pool.add(task('fast'));
    await pool.drain();
    expect(peak).toBeLessThanOrEqual(4);
    expect(peakHost.get('slow')).toBe(2);
    expect(peakHost.get('fast')).toBe(2);
    expect(order.filter((h) => h === 'fast')).toHaveLength(10);
    // fast items started before the slow host's queue was worked off
    expect(order.indexOf('fast')).toBeLessThan(order.lastIndexOf('slow'));
  });

  it('stop() drops queued work; drain() rethrows a task that threw', async () => {
    const pool = new HostPool(1, 1);
    let ran = 0;
    await pool.add({ host: 'a', abandon: () => {}, run: async () => { ran += 1; await sleep(10); } });
    await pool.add({ host: 'a', abandon: () => {}, run: async () => { ran += 1; } });
    pool.stop();
    await pool.drain();
    expect(ran).toBe(1);
    const p2 = new HostPool(2, 2);
    await p2.add({ host: 'a', abandon: () => {}, run: async () => { throw new Error('bug'); } });
    await expect(p2.drain()).rejects.toThrow('bug');
  });

  it('lets a gated host sleep while others run, and abandons it when nothing else is left', async () => {
    const shut = new Set(['dead']);
    const gate = {
      hold: (host: string) => (shut.has(host) ? { waitMs: 60_000, why: 'breaker' } : null),
      pass: () => {},
      maxConcurrent: () => 10,
      abandonReason: (_host: string, b: { why: string }) => (b.why === 'breaker' ? 'breaker_open' : null),
    };
    const pool = new HostPool(2, 2, gate);
    const ran: string[] = [];
    const gaveUp: string[] = [];
    const task = (host: string, id: string) => ({ host, run: async () => { ran.push(id); await sleep(5); }, abandon: (why: string) => gaveUp.push(`${id}:${why}`) });
    await pool.add(task('dead', 'd1'));
    await pool.add(task('dead', 'd2'));
    for (let i = 0; i < 5; i += 1) await pool.add(task('ok', `o${i}`));
    await pool.drain();
    expect(ran).toEqual(['o0', 'o1', 'o2', 'o3', 'o4']);
    expect(gaveUp).toEqual(['d1:breaker_open', 'd2:breaker_open']);
  });

  it('starts the next task when one releases its slot, and bounds the tasks finishing after release', async () => {
    const pool = new HostPool(2, 1, undefined, Date.now, 16);
    let transferring = 0;
    let finishing = 0;
    let peakTransferring = 0;
    let peakFinishing = 0;
    let overlapped = false;
    const task = () => ({
      host: 'a',
      abandon: () => {},
      run: async (release: () => void) => {
        transferring += 1;
        peakTransferring = Math.max(peakTransferring, transferring);
        if (finishing > 0) overlapped = true;
        await sleep(5);
        transferring -= 1;
        finishing += 1;
        peakFinishing = Math.max(peakFinishing, finishing);
        release();
        release(); // a second call changes nothing
        await sleep(40);
        finishing -= 1;
      },
    });
    const t0 = Date.now();
    for (let i = 0; i < 6; i += 1) await pool.add(task());
    await pool.drain();
    // The per-host cap (1) counts slots held: a released task no longer holds one, so the next
    // task for the same host started while it was still finishing.
    expect(peakTransferring).toBe(1);
    expect(overlapped).toBe(true);
    // ...but no task starts while `concurrency` (2) released ones are still running.
    expect(peakFinishing).toBe(2);
    // drain() waited for the finishing tasks too: 6 tasks, 2 finishing at a time, 40 ms each.
    expect(finishing).toBe(0);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(3 * 40);
  });
});

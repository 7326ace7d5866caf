import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Deferred, HostGate } from '../../src/hosts/gate.js';
import { loadBreakers, loadRatelimits } from '../../src/hosts/policy.js';
import { FINISHING_PER_SLOT } from '../../src/config.js';
import { Pool, type Lane, type Task } from '../../src/pool.js';
import type { HostRow } from '../../src/ledger/types.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'docstokg-pool-'));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

async function gateWith(rates: string, stored: HostRow[] = []): Promise<HostGate> {
  const rl = join(dir, `rl-${Math.random()}.yaml`);
  const br = join(dir, `br-${Math.random()}.yaml`);
  await writeFile(rl, `version: 1\ndefaults:\n  artifact: {rates: [], max_delay_ms: 100}\n${rates}`);
  await writeFile(br, 'defaults: {fail_max: 2, reset_timeout_s: 60}\n');
  const rows = new Map(stored.map((r) => [r.host, r]));
  return new HostGate(loadRatelimits(rl), loadBreakers(br), 60_000, (h) => rows.get(h), () => {});
}

const signal = new AbortController().signal;

/** A task that sends one request to its host (settled as a success) and then sleeps `ms`. */
function task(host: string, ms: number, seen: (host: string, phase: 'start' | 'end') => void = () => {}, abandoned: string[] = []): Task {
  return {
    host,
    abandon: (why) => abandoned.push(`${host}:${why}`),
    run: async (lane: Lane) => {
      const permit = await lane.enter(host, signal);
      permit.sent();
      seen(host, 'start');
      await sleep(ms);
      permit.settle('success', null, null);
      seen(host, 'end');
    },
  };
}

describe('Pool (p-limit adapter)', () => {
  it('never exceeds the total or the per-host limit, and keeps other hosts busy', async () => {
    const pool = new Pool(4, 2, await gateWith(''), 8);
    let active = 0;
    let peak = 0;
    const perHost = new Map<string, number>();
    const peakHost = new Map<string, number>();
    const order: string[] = [];
    const seen = (host: string, phase: 'start' | 'end'): void => {
      const d = phase === 'start' ? 1 : -1;
      active += d;
      perHost.set(host, (perHost.get(host) ?? 0) + d);
      peak = Math.max(peak, active);
      peakHost.set(host, Math.max(peakHost.get(host) ?? 0, perHost.get(host)!));
      if (phase === 'start') order.push(host);
    };
    for (let i = 0; i < 10; i += 1) await pool.add(task('slow', 30, seen));
    for (let i = 0; i < 10; i += 1) await pool.add(task('fast', 5, seen));
    await pool.drain();
    expect(peak).toBeLessThanOrEqual(4);
    expect(peakHost.get('slow')).toBe(2);
    expect(peakHost.get('fast')).toBe(2);
    expect(order.filter((h) => h === 'fast')).toHaveLength(10);
    expect(order.indexOf('fast')).toBeLessThan(order.lastIndexOf('slow'));
  });

  it('stop() drops queued work; drain() rethrows a task that threw', async () => {
    const pool = new Pool(1, 1, await gateWith(''));
    let ran = 0;
    const counted = (): Task => ({ ...task('a', 10), run: async (lane) => { ran += 1; await task('a', 10).run(lane); } });
    await pool.add(counted());
    await pool.add(counted());
    await sleep(1);
    pool.stop();
    await pool.drain();
    expect(ran).toBe(1);
    const p2 = new Pool(2, 2, await gateWith(''));
    await p2.add({ host: 'a', abandon: () => {}, run: async () => { throw new Error('bug'); } });
    await expect(p2.drain()).rejects.toThrow('bug');
  });

  it('runs other hosts while one has an open breaker, then gives that host up without asking it', async () => {
    const dead: HostRow = { host: 'dead', breaker_state: 'open', open_until: Date.now() + 60_000, cooldown_until: 0, failures: 2, last_error: 'http_503' };
    const pool = new Pool(2, 2, await gateWith('', [dead]));
    const ran: string[] = [];
    const gaveUp: string[] = [];
    const seen = (host: string, phase: string): void => void (phase === 'start' && ran.push(host));
    for (let i = 0; i < 3; i += 1) await pool.add(task('dead', 5, seen, gaveUp));
    for (let i = 0; i < 5; i += 1) await pool.add(task('ok', 5, seen, gaveUp));
    await pool.drain();
    expect(ran).toEqual(Array(5).fill('ok'));
    expect(gaveUp).toEqual(Array(3).fill('dead:breaker_open'));
  });

  it('frees a task\'s slots when it releases them, and bounds the tasks still finishing', async () => {
    const pool = new Pool(2, 1, await gateWith(''), 16);
    let transferring = 0;
    let finishing = 0;
    let peakTransferring = 0;
    let peakFinishing = 0;
    let overlapped = false;
    const t = (): Task => ({
      host: 'a',
      abandon: () => {},
      run: async (lane) => {
        const permit = await lane.enter('a', signal);
        transferring += 1;
        peakTransferring = Math.max(peakTransferring, transferring);
        if (finishing > 0) overlapped = true;
        await sleep(5);
        permit.settle('success', null, null);
        transferring -= 1;
        finishing += 1;
        peakFinishing = Math.max(peakFinishing, finishing);
        lane.offNetwork();
        lane.offNetwork();
        await sleep(100);
        finishing -= 1;
      },
    });
    for (let i = 0; i < 30; i += 1) await pool.add(t());
    await pool.drain();
    expect(peakTransferring).toBe(1);
    expect(overlapped).toBe(true);
    expect(peakFinishing).toBe(2 * FINISHING_PER_SLOT);
    expect(finishing).toBe(0);
  });

  it('a task back from finishing takes its host\'s slot again: the host\'s cap holds', async () => {
    const pool = new Pool(2, 1, await gateWith(''), 16);
    const order: string[] = [];
    let inFlight = 0;
    let peak = 0;
    const request = async (lane: Lane, name: string, ms: number): Promise<void> => {
      const permit = await lane.enter('a', signal);
      inFlight += 1;
      peak = Math.max(peak, inFlight);
      order.push(`${name} in`);
      await sleep(ms);
      inFlight -= 1;
      order.push(`${name} out`);
      permit.settle('success', null, null);
    };
    let bStarted!: () => void;
    const bIn = new Promise<void>((resolve) => (bStarted = resolve));
    await pool.add({
      host: 'a',
      abandon: () => {},
      run: async (lane) => {
        await request(lane, 'A', 5);
        lane.offNetwork();
        // Finishing, its host's one slot went to B; then something after the body is retried.
        await bIn;
        await request(lane, 'A again', 5);
      },
    });
    await pool.add({
      host: 'a',
      abandon: () => {},
      run: async (lane) => {
        const permit = await lane.enter('a', signal);
        inFlight += 1;
        order.push('B in');
        bStarted();
        await sleep(40);
        inFlight -= 1;
        order.push('B out');
        permit.settle('success', null, null);
      },
    });
    await pool.drain();
    expect(order).toEqual(['A in', 'A out', 'B in', 'B out', 'A again in', 'A again out']);
    expect(peak).toBe(1);
  });

  it('gives a free network slot to a host with a backlog before hosts with little to do', async () => {
    // One network slot; "big" has 6 tasks (cap 1: a backlog), each "small" host has one.
    const pool = new Pool(1, 1, await gateWith(''), 64);
    const order: string[] = [];
    const seen = (host: string, phase: string): void => void (phase === 'start' && order.push(host));
    for (let i = 0; i < 6; i += 1) await pool.add(task('big', 2, seen));
    for (let i = 0; i < 6; i += 1) await pool.add(task(`small${i}`, 2, seen));
    await pool.drain();
    // Every time "big" waited for the slot it was first in line (it still had a backlog).
    expect(order.slice(0, 5)).toEqual(Array(5).fill('big'));
  });

  it('holds a slot of each redirect hop\'s host without deadlock when two hosts redirect to each other', async () => {
    const pool = new Pool(8, 1, await gateWith(''), 64);
    const inFlight = new Map<string, number>();
    let peak = 0;
    const deferred: string[] = [];
    const hop = (from: string, to: string): Task => ({
      host: from,
      abandon: () => {},
      run: async (lane) => {
        for (const host of [from, to]) {
          try {
            const permit = await lane.enter(host, signal);
            inFlight.set(host, (inFlight.get(host) ?? 0) + 1);
            peak = Math.max(peak, inFlight.get(host)!);
            await sleep(5);
            inFlight.set(host, inFlight.get(host)! - 1);
            permit.settle('success', null, null);
          } catch (err) {
            if (!(err instanceof Deferred)) throw err;
            deferred.push(host);
            return;
          }
        }
      },
    });
    for (let i = 0; i < 4; i += 1) {
      await pool.add(hop('a', 'b'));
      await pool.add(hop('b', 'a'));
    }
    await pool.drain();
    // The per-host cap (1) held on every hop, and every task ended (hops that could not get a
    // slot within max_delay_ms were deferred, not stuck).
    expect(peak).toBe(1);
    expect(deferred.every((h) => h === 'a' || h === 'b')).toBe(true);
  });

  it('bounds the tasks queued and started together, whatever the number of hosts', async () => {
    // One network slot held by a task that waits; every other task is on a host of its own, so
    // each could start at once: the window still holds them back.
    const pool = new Pool(1, 4, await gateWith(''), 8);
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    await pool.add({ host: 'h0', abandon: () => {}, run: async (lane) => { (await lane.enter('h0', signal)).settle('success', null, null); await held; } });
    let added = 1;
    const adding = (async () => {
      for (let i = 1; i < 50; i += 1) {
        await pool.add(task(`h${i}`, 1));
        added += 1;
      }
    })();
    await sleep(50);
    expect(added).toBe(8);
    release();
    await adding;
    await pool.drain();
    expect(added).toBe(50);
  });
});

import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgent } from '../../src/http/client.js';
import { fetchInto, type BodySink } from '../../src/http/fetch-into.js';
import { startOrigin, type Origin } from '../helpers/origin.js';

/** A sink that records what happened to it; `pauseEvery` makes it ask for a pause on every Nth chunk. */
function recorder(opts: { pauseEvery?: number; throwAt?: number; abortDelayMs?: number } = {}) {
  const chunks: Buffer[] = [];
  const log = { chunks, pauses: 0, ended: 0, aborted: 0, released: false };
  const sink: BodySink = {
    accept(chunk, resume) {
      if (opts.throwAt !== undefined && chunks.length === opts.throwAt) throw new Error('refused by the sink');
      chunks.push(Buffer.from(chunk));
      if (opts.pauseEvery && chunks.length % opts.pauseEvery === 0) {
        log.pauses += 1;
        setTimeout(resume, 2);
        return false;
      }
      return true;
    },
    async end() {
      log.ended += 1;
    },
    async abort() {
      log.aborted += 1;
      await new Promise((r) => setTimeout(r, opts.abortDelayMs ?? 0));
      log.released = true;
    },
  };
  return { sink, log };
}

describe('fetchInto', () => {
  let origin: Origin;
  const big = randomBytes(3 * 1024 * 1024);
  beforeAll(async () => {
    origin = await startOrigin({
      '/big': { body: big },
      '/cut': { body: big, truncateAfter: 200_000 },
      '/slow': { body: big.subarray(0, 64 * 1024), trickle: { chunk: 1024, ms: 20 } },
    });
  });
  afterAll(async () => origin.close());

  const agent = () => createAgent({ connectTimeout: 5_000, stallTimeout: 5_000, concurrency: 2, blocked: null });

  it('never writes a request that onSent refuses as it leaves (a holder that lost its lease)', async () => {
    const dispatcher = await agent();
    const before = origin.requests.filter((r) => r.path === '/big').length;
    const refused = new Error('lease lost');
    const { sink, log } = recorder();
    const got = fetchInto(dispatcher, new URL(origin.url('/big')), {}, new AbortController().signal, () => sink, () => {
      throw refused;
    });
    await expect(got).rejects.toBe(refused);
    // Another request on the same agent goes through: the refused one never reached the origin.
    await fetchInto(dispatcher, new URL(origin.url('/big')), {}, new AbortController().signal, () => recorder().sink);
    expect(origin.requests.filter((r) => r.path === '/big').length).toBe(before + 1);
    expect(log.chunks).toEqual([]);
    await dispatcher.close();
  });

  it('feeds every byte in order, and a sink that asked to pause is resumed', async () => {
    const dispatcher = await agent();
    const { sink, log } = recorder({ pauseEvery: 3 });
    let status = 0;
    await fetchInto(dispatcher, new URL(origin.url('/big')), {}, new AbortController().signal, (s) => {
      status = s;
      return sink;
    });
    expect(status).toBe(200);
    expect(Buffer.concat(log.chunks).equals(big)).toBe(true);
    expect(log.pauses).toBeGreaterThan(0);
    expect([log.ended, log.aborted]).toEqual([1, 0]);
    await dispatcher.close();
  });

  it('a sink that throws fails the response with its error and is released, not ended; the agent goes on', async () => {
    const dispatcher = await agent();
    const { sink, log } = recorder({ throwAt: 1 });
    const run = fetchInto(dispatcher, new URL(origin.url('/big')), {}, new AbortController().signal, () => sink);
    await expect(run).rejects.toThrow('refused by the sink');
    expect([log.ended, log.aborted, log.released]).toEqual([0, 1, true]);
    const next = recorder();
    await fetchInto(dispatcher, new URL(origin.url('/big')), {}, new AbortController().signal, () => next.sink);
    expect(Buffer.concat(next.log.chunks).equals(big)).toBe(true);
    await dispatcher.close();
  });

  it('the signal stops a body in flight: rejects with its reason only once the sink is released', async () => {
    const dispatcher = await agent();
    const { sink, log } = recorder({ abortDelayMs: 50 });
    const ac = new AbortController();
    const reason = new Error('lease lost');
    const run = fetchInto(dispatcher, new URL(origin.url('/slow')), {}, ac.signal, () => {
      setTimeout(() => ac.abort(reason), 60);
      return sink;
    });
    await expect(run).rejects.toBe(reason);
    expect(log.released).toBe(true);
    expect(log.ended).toBe(0);
    expect(log.chunks.length).toBeGreaterThan(0);
    await dispatcher.close();
  });

  it('an aborted signal sends nothing', async () => {
    const dispatcher = await agent();
    const before = origin.requests.length;
    const ac = new AbortController();
    ac.abort(new Error('stopping'));
    await expect(fetchInto(dispatcher, new URL(origin.url('/big')), {}, ac.signal, () => recorder().sink)).rejects.toThrow('stopping');
    expect(origin.requests.length).toBe(before);
    await dispatcher.close();
  });

  it('a connection closed mid-body rejects with the socket error and releases the sink', async () => {
    const dispatcher = await agent();
    const { sink, log } = recorder();
    const run = fetchInto(dispatcher, new URL(origin.url('/cut')), {}, new AbortController().signal, () => sink);
    await expect(run).rejects.toMatchObject({ code: expect.stringMatching(/^UND_ERR_/) });
    expect([log.ended, log.aborted]).toEqual([0, 1]);
    expect(Buffer.concat(log.chunks).length).toBeLessThanOrEqual(200_000);
    await dispatcher.close();
  });
});

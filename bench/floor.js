#!/usr/bin/env node
// node bench/floor.js <url list> <out dir> [--h2] [--fsync] [--threads N]
// The least a Node.js client on docstokg's stack does for each verified file: one GET through
// undici's dispatcher, SHA-256 of the body as it arrives, the body written to a part file, and a
// rename to <out>/<ab>/<sha256>.pdf (with --fsync: the file and its directory fsynced first).
// No ledger, records, policy, validation or resume. The benchmark runs it beside docstokg so
// that what Node.js and undici alone cost on a set is measured in the same run as the peers.
// --threads N: N worker threads, each with its own event loop, undici Agent, TLS, hashing and file
// writes, sharing the 16 connections and taking every Nth URL; the main thread only waits. It
// bounds from below what transfers on worker threads could cost on the machine at hand.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, open, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { Worker, isMainThread, workerData } from 'node:worker_threads';
// undici's Agent alone, as docstokg loads it (src/http/undici.ts): its entry point loads all of undici.
import Agent from 'undici/lib/dispatcher/agent.js';

const CONCURRENCY = 16;
/** Bytes queued for the part file at which the connection is paused until the queue is written. */
const HIGH_WATER = 4 * 1024 * 1024;

const [list, out, ...flags] = isMainThread ? process.argv.slice(2) : workerData.argv;
const threadsAt = flags.indexOf('--threads');
const threads = threadsAt >= 0 ? Number(flags[threadsAt + 1]) : 1;
if (isMainThread && threads > 1) {
  const argv = [list, out, ...flags];
  await Promise.all(
    Array.from({ length: threads }, (_, share) => new Promise((resolve, reject) => {
      const w = new Worker(new URL(import.meta.url), { workerData: { argv, share } });
      w.on('error', reject);
      w.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`floor thread ${share} exited with ${code}`))));
    })),
  );
  process.exit(0);
}
const share = isMainThread ? 0 : workerData.share;
// The 16 connections split between the threads (the first ones take one more when N does not divide 16).
const connections = Math.max(1, Math.floor(CONCURRENCY / threads) + (share < CONCURRENCY % threads ? 1 : 0));
const durable = flags.includes('--fsync');
const urls = readFileSync(list, 'utf8').split('\n').filter(Boolean);
// --h2: HTTP/2 where the server offers it, as docstokg does.
const agent = new Agent({ connections, allowH2: flags.includes('--h2') });
const staging = join(out, '.staging');
const shards = new Map();

/** Writes queued chunks with one writev at a time; `drained` resolves when nothing is left. */
function partWriter(fh) {
  let queue = [];
  let queued = 0;
  let writing = null;
  const pump = async () => {
    while (queue.length > 0) {
      const batch = queue;
      queue = [];
      queued = 0;
      await fh.writev(batch);
    }
    writing = null;
  };
  return {
    push(chunk) {
      queue.push(chunk);
      queued += chunk.length;
      writing ??= pump();
      return queued < HIGH_WATER;
    },
    drained: () => writing ?? Promise.resolve(),
  };
}

function fetchTo(url, part) {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    let writer = null;
    let opening = null;
    const early = [];
    agent.dispatch({ origin: target.origin, path: target.pathname + target.search, method: 'GET', headers: {} }, {
      onRequestStart() {},
      onResponseStart(controller, status) {
        if (status !== 200) return reject(new Error(`${url}: HTTP ${status}`));
        opening = open(part, 'w').then((fh) => {
          writer = partWriter(fh);
          for (const c of early.splice(0)) writer.push(c);
          return fh;
        });
      },
      onResponseData(controller, chunk) {
        hash.update(chunk);
        if (writer === null) early.push(chunk);
        else if (!writer.push(chunk)) {
          controller.pause();
          writer.drained().then(() => controller.resume(), reject);
        }
      },
      onResponseEnd() {
        if (opening === null) return;
        opening
          .then(async (fh) => {
            await writer.drained();
            if (durable) await fh.sync();
            await fh.close();
            resolve(hash.digest('hex'));
          })
          .catch(reject);
      },
      onResponseError(controller, err) {
        reject(err);
      },
    });
  });
}

async function fsyncDir(dir) {
  const fh = await open(dir, 'r');
  await fh.sync();
  await fh.close();
}

async function place(part, sha) {
  const dir = join(out, sha.slice(0, 2));
  if (!shards.has(dir)) shards.set(dir, mkdir(dir, { recursive: true }));
  await shards.get(dir);
  await rename(part, join(dir, `${sha}.pdf`));
  if (durable) await fsyncDir(dir);
}

await mkdir(staging, { recursive: true });
// This thread's URLs: every `threads`th, from its share on; part names stay unique across threads.
let next = share;
await Promise.all(
  Array.from({ length: connections }, async () => {
    while (next < urls.length) {
      const i = next;
      next += threads;
      const part = join(staging, `${i}.part`);
      await place(part, await fetchTo(urls[i], part));
    }
  }),
);
await agent.close();

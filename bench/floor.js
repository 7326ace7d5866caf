#!/usr/bin/env node
// node bench/floor.js <url list> <out dir> [--h2] [--fsync] [--threads N] [--raw]
// The least a Node.js client on docstokg's stack does for each verified file: one GET through
// undici's dispatcher, SHA-256 of the body as it arrives, the body written to a part file, and a
// rename to <out>/<ab>/<sha256>.pdf (with --fsync: the file and its directory fsynced first).
// No ledger, records, policy, validation or resume. The benchmark runs it beside docstokg so
// that what Node.js and undici alone cost on a set is measured in the same run as the peers.
// --threads N: N worker threads, each with its own event loop, undici Agent, TLS, hashing and file
// writes, sharing the 16 connections and taking every Nth URL; the main thread only waits. It
// bounds from below what transfers on worker threads could cost on the machine at hand.
// --raw: a bare HTTP/1.1 client on node:net and node:tls in place of undici (HTTP/1.1 only, --h2
// ignored): what Node.js itself costs on a set, beneath any HTTP library.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, open, rename } from 'node:fs/promises';
import { connect as netConnect, isIP } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
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
const raw = flags.includes('--raw');
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

/**
 * The receiving end of one GET: SHA-256 of the body as it arrives and the body written to `part`
 * (opened when the answer starts). `data` returns false when the connection must pause until
 * `drained` resolves. `done` resolves with the digest once the part is written and closed.
 */
function receiver(url, part) {
  const hash = createHash('sha256');
  let writer = null;
  let opening = null;
  const early = [];
  let settle;
  const done = new Promise((resolve, reject) => (settle = { resolve, reject }));
  return {
    done,
    fail: (err) => settle.reject(err),
    start(status) {
      if (status !== 200) return settle.reject(new Error(`${url}: HTTP ${status}`));
      opening = open(part, 'w').then((fh) => {
        writer = partWriter(fh);
        for (const c of early.splice(0)) writer.push(c);
        return fh;
      });
    },
    data(chunk) {
      hash.update(chunk);
      if (writer === null) early.push(chunk);
      else return writer.push(chunk);
      return true;
    },
    drained: () => writer.drained(),
    end() {
      if (opening === null) return;
      opening
        .then(async (fh) => {
          await writer.drained();
          if (durable) await fh.sync();
          await fh.close();
          settle.resolve(hash.digest('hex'));
        })
        .catch(settle.reject);
    },
  };
}

function fetchTo(url, part) {
  const target = new URL(url);
  const rx = receiver(url, part);
  agent.dispatch({ origin: target.origin, path: target.pathname + target.search, method: 'GET', headers: {} }, {
    onRequestStart() {},
    onResponseStart(controller, status) {
      rx.start(status);
    },
    onResponseData(controller, chunk) {
      if (!rx.data(chunk)) {
        controller.pause();
        rx.drained().then(() => controller.resume(), rx.fail);
      }
    },
    onResponseEnd() {
      rx.end();
    },
    onResponseError(controller, err) {
      rx.fail(err);
    },
  });
  return rx.done;
}

/** --raw: idle keep-alive sockets of the bare HTTP/1.1 client. */
const idle = [];

function rawConnect(target) {
  const port = Number(target.port) || (target.protocol === 'https:' ? 443 : 80);
  const host = target.hostname;
  // NODE_EXTRA_CA_CERTS is in Node.js's default trust, as for undici.
  const socket = target.protocol === 'https:' ? tlsConnect({ host, port, servername: isIP(host) ? undefined : host }) : netConnect({ host, port });
  socket.setNoDelay(true);
  // An idle socket the server resets must not end the process; the next GET on it fails instead.
  socket.on('error', () => {});
  return socket;
}

/** An idle socket still open, or a new one. */
function rawSocket(target) {
  for (let s = idle.pop(); s; s = idle.pop()) if (!s.destroyed && s.writable) return s;
  return rawConnect(target);
}

/**
 * One GET over a bare HTTP/1.1 client on node:net and node:tls: the request written as one string,
 * the status line and Content-Length read from the head, the body counted off the socket's data.
 * Enough for nginx's static answers (no chunked bodies, no redirects), and nothing more: it shows
 * what Node.js's sockets and TLS cost without an HTTP library.
 */
function rawFetchTo(url, part) {
  const target = new URL(url);
  const rx = receiver(url, part);
  const socket = rawSocket(target);
  let head = null;
  let left = -1;
  let keep = true;
  const finish = (err) => {
    socket.off('data', onData);
    socket.off('error', finish);
    socket.off('close', onClose);
    if (err) {
      socket.destroy();
      return rx.fail(err);
    }
    if (keep) idle.push(socket);
    else socket.end();
    rx.end();
  };
  const onClose = () => finish(new Error(`${url}: connection closed with ${left} bytes left`));
  const onData = (data) => {
    if (left < 0) {
      head = head ? Buffer.concat([head, data]) : data;
      const at = head.indexOf('\r\n\r\n');
      if (at < 0) return;
      const text = head.toString('latin1', 0, at);
      const length = /\r\ncontent-length:\s*(\d+)/i.exec(text);
      if (!length) return finish(new Error(`${url}: no Content-Length`));
      keep = !/\r\nconnection:\s*close/i.test(text);
      left = Number(length[1]);
      rx.start(Number(text.slice(9, 12)));
      data = head.subarray(at + 4);
      head = null;
    }
    if (data.length > left) return finish(new Error(`${url}: more bytes than Content-Length`));
    left -= data.length;
    if (data.length > 0 && !rx.data(data) && left > 0) {
      socket.pause();
      rx.drained().then(() => socket.resume(), (err) => finish(err));
    }
    if (left === 0) finish(null);
  };
  socket.on('data', onData);
  socket.on('error', finish);
  socket.on('close', onClose);
  socket.write(`GET ${target.pathname}${target.search} HTTP/1.1\r\nHost: ${target.host}\r\n\r\n`, 'latin1');
  return rx.done;
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
      await place(part, await (raw ? rawFetchTo : fetchTo)(urls[i], part));
    }
  }),
);
await agent.close();
for (const socket of idle) socket.end();

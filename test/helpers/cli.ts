import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { startOrigin, type Origin, type RequestLog } from '../fixtures/origin.js';

export const BIN = resolve(import.meta.dirname, '../../bin/docstokg.js');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  records: Record<string, unknown>[];
}

export interface RunOptions {
  env?: Record<string, string>;
  stdin?: string | Buffer;
  /** called once the process is running, e.g. to send it a signal */
  onSpawn?: (pid: number) => void;
  onStdout?: (chunk: string) => void;
  /** another binary than the repository's (an unpacked package) */
  bin?: string;
}

/** Runs the real, built binary (the README's `npm install` builds it). */
export function runCli(args: string[], opts: RunOptions = {}): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [opts.bin ?? BIN, ...args], {
      env: { ...process.env, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      opts.onStdout?.(d);
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    if (opts.stdin !== undefined) child.stdin.end(opts.stdin);
    else child.stdin.end();
    if (child.pid) opts.onSpawn?.(child.pid);
    child.on('close', (code, signal) => {
      const records = stdout
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      resolvePromise({ code, signal, stdout, stderr, records });
    });
  });
}

export interface Workspace {
  dir: string;
  out: string;
  file: (name: string, content: string | Buffer) => Promise<string>;
  cleanup: () => Promise<void>;
}

export async function workspace(): Promise<Workspace> {
  const dir = await mkdtemp(join(tmpdir(), 'docstokg-test-'));
  return {
    dir,
    out: join(dir, 'out'),
    file: async (name, content) => {
      const p = join(dir, name);
      await writeFile(p, content);
      return p;
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

const VICTIM_AGENT = 'victim';

/**
 * Three runs of `args` started together; the first, the one a test kills, names itself in its
 * User-Agent so the origin's log tells its requests apart (see `fromVictim`).
 */
export function runWithVictim(args: string[], opts: RunOptions = {}): { runs: Promise<CliResult>[]; victim: () => number } {
  let pid = 0;
  const runs = [0, 1, 2].map((i) =>
    runCli(i === 0 ? [...args, '--user-agent', VICTIM_AGENT] : args, { ...opts, onSpawn: (p) => (i === 0 ? (pid = p) : undefined) }),
  );
  return { runs, victim: () => pid };
}

/** A request sent by the first run of `runWithVictim`. */
export function fromVictim(q: RequestLog): boolean {
  return q.headers['user-agent'] === VICTIM_AGENT;
}

export function jsonl(items: unknown[]): string {
  return `${items.map((i) => (typeof i === 'string' ? i : JSON.stringify(i))).join('\n')}\n`;
}

export function byId(records: Record<string, unknown>[]): Map<unknown, Record<string, unknown>> {
  return new Map(records.map((r) => [r.id, r]));
}

/**
 * A real origin and a temporary workspace for one test file, started before its tests and
 * torn down after them. Read the fields inside tests (they are set by beforeAll).
 */
export function originAndWorkspace(start: () => Promise<Origin> = () => startOrigin()): { origin: Origin; ws: Workspace } {
  const env = {} as { origin: Origin; ws: Workspace };
  beforeAll(async () => {
    env.origin = await start();
    env.ws = await workspace();
  });
  afterAll(async () => {
    await env.origin.close();
    await env.ws.cleanup();
  });
  return env;
}

import type { IncomingHttpHeaders } from 'node:http';

/** What a transfer thread needs to build its Agent: plain data, cloned to it once. */
export interface ThreadOptions {
  connectTimeout: number;
  stallTimeout: number;
  concurrency: number;
  /** --deny-private: the thread builds the same ranges itself (a BlockList is not cloned) */
  denyPrivate: boolean;
  ca: string | null;
  http2: boolean;
}

/** Body bytes a thread gathers for one response before it sends them on (or at the end of its turn). */
export const TRANSFER_BATCH_BYTES = 256 * 1024;

/** An error as it crosses threads: each level of its cause chain, with the fields classify.ts reads. */
export interface FlatError {
  name: string;
  message: string;
  code?: string;
}

export type ToThread =
  | { t: 'dispatch'; id: number; origin: string; path: string; headers: Record<string, string>; deadline: number }
  | { t: 'abort'; id: number; message: string }
  | { t: 'pause'; id: number }
  | { t: 'resume'; id: number };

export type FromThread =
  | { id: number; t: 'sent' }
  | { id: number; t: 'headers'; status: number; headers: IncomingHttpHeaders }
  | { id: number; t: 'data'; body: ArrayBuffer }
  | { id: number; t: 'end' }
  | { id: number; t: 'error'; error: FlatError[] };

export function flattenError(err: unknown): FlatError[] {
  const out: FlatError[] = [];
  for (let e: unknown = err; e && out.length < 4; e = (e as { cause?: unknown }).cause) {
    const code = (e as { code?: unknown }).code;
    out.push({ name: (e as Error).name ?? 'Error', message: (e as Error).message ?? String(e), ...(typeof code === 'string' ? { code } : {}) });
  }
  return out;
}

/** The error again, with its name, code and causes (what the classification table reads). */
export function rebuildError(flat: readonly FlatError[]): Error {
  let cause: Error | undefined;
  for (let i = flat.length - 1; i >= 0; i -= 1) {
    const f = flat[i]!;
    const e = new Error(f.message, cause ? { cause } : undefined);
    e.name = f.name;
    if (f.code !== undefined) Object.assign(e, { code: f.code });
    cause = e;
  }
  return cause ?? new Error('transfer thread error');
}

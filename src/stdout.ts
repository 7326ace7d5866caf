/**
 * stdout's reader may go away early (`docstokg export | head -2`): the write fails with EPIPE.
 * That is how shell pipelines end, not an error: the command stops writing, winds down (a download
 * as after SIGTERM: leases released, parts kept) and exits EXIT_PIPE without a word, as a process
 * ended by SIGPIPE does.
 */
export const EXIT_PIPE = 141;

let closed = false;
const listeners = new Set<() => void>();

process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
  if (closed) return;
  closed = true;
  for (const listener of listeners) listener();
});

export function stdoutClosed(): boolean {
  return closed;
}

/** Calls `listener` once stdout's reader is gone; returns a function that removes it. */
export function onStdoutClosed(listener: () => void): () => void {
  if (closed) queueMicrotask(listener);
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** Resolves when stdout can take more, or when its reader is gone (a closed pipe never drains). */
export function stdoutDrained(): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = (): void => {
      process.stdout.off('drain', done);
      remove();
      resolve();
    };
    const remove = onStdoutClosed(done);
    process.stdout.on('drain', done);
  });
}

/**
 * Writes `text`, waiting while the pipe is full. False once the reader is gone: the caller stops.
 */
export async function writeOut(text: string): Promise<boolean> {
  if (closed) return false;
  if (!process.stdout.write(text)) await stdoutDrained();
  return !closed;
}

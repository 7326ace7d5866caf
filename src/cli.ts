import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { DOWNLOAD_OPTIONS, EXPORT_OPTIONS, RECONCILE_OPTIONS, SHARED_OPTIONS, STATUS_OPTIONS, type ReconcileOptions, type StatusOptions, envName, resolveOptions, type DownloadOptions, type ExportOptions, type OptionSpec } from './config.js';
import { DocstokgError, FatalError, UsageError } from './errors.js';
import { packageFile } from './package-files.js';

const EXIT = { ok: 0, usage: 2, fatal: 3 } as const;

function version(): string {
  const pkg = JSON.parse(readFileSync(packageFile('package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

function addOptions(cmd: Command, specs: readonly OptionSpec[]): Command {
  for (const s of specs) {
    const long = s.kind === 'negbool' ? `--no-${s.flag}` : `--${s.flag}`;
    const flags = `${s.short ? `-${s.short}, ` : ''}${long}${s.arg ? ` <${s.arg}>` : ''}`;
    const dflt = s.default !== undefined && s.default !== '' && s.kind !== 'bool' && s.kind !== 'negbool' ? ` [${s.default}]` : '';
    const env = envName(s.kind === 'negbool' ? `no-${s.flag}` : s.flag);
    const option = new Option(flags, `${s.help}${dflt} (env ${env})`);
    if (s.kind === 'list') option.argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]);
    cmd.addOption(option);
  }
  return cmd;
}

/** Only values typed on the command line; defaults and environment are merged by config.ts. */
function given(cmd: Command): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(cmd.opts())) if (cmd.getOptionValueSource(k) === 'cli') out[k] = v;
  return out;
}

async function finish(code: number): Promise<never> {
  await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
  process.exit(code);
}

/** Runtime failures of the machine rather than of docstokg: one clear line, no stack. */
function fatalMessage(e: NodeJS.ErrnoException | undefined): string | null {
  const code = e?.code ?? '';
  if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'SQLITE_FULL') {
    return `disk full (${code}): ${e!.message}. Stored files are intact; free space (or raise --min-free) and run again to finish.`;
  }
  if (code === 'EROFS' || code === 'EACCES' || code === 'EPERM') return `cannot write (${code}): ${e!.message}`;
  if (code === 'EIO') return `input/output error: ${e!.message}`;
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
    return `the ledger is locked by another process (${code}) for longer than --lock-timeout; try again, or raise --lock-timeout`;
  }
  if (code.startsWith('SQLITE_')) return `the ledger is unusable (${code}): ${e!.message}. Run \`docstokg reconcile\`, or use another --db`;
  return null;
}

let failing: Promise<never> | null = null;

/** Reports the first failure and exits; a later one (the same cause met elsewhere) adds nothing. */
function fail(err: unknown): Promise<never> {
  failing ??= report(err);
  return failing;
}

function report(err: unknown): Promise<never> {
  if (err instanceof UsageError) {
    process.stderr.write(`docstokg: ${err.message}\n`);
    return finish(EXIT.usage);
  }
  if (err instanceof FatalError || err instanceof DocstokgError) {
    process.stderr.write(`docstokg: fatal: ${err.message}\n`);
    return finish(EXIT.fatal);
  }
  const e = err as NodeJS.ErrnoException;
  const known = fatalMessage(e);
  if (known) {
    process.stderr.write(`docstokg: fatal: ${known}\n`);
    return finish(EXIT.fatal);
  }
  // Unknown errors are bugs: say so loudly, with the stack, and exit 3.
  process.stderr.write(`docstokg: internal error (please report): ${e?.stack ?? String(err)}\n`);
  return finish(EXIT.fatal);
}

function action<T>(specs: readonly OptionSpec[], run: (opts: T, args: string[]) => Promise<number>) {
  return async (...args: unknown[]): Promise<void> => {
    const cmd = args[args.length - 1] as Command;
    try {
      const opts = resolveOptions<T>([...SHARED_OPTIONS, ...specs], given(cmd), process.env);
      await finish(await run(opts, cmd.args));
    } catch (err) {
      await fail(err);
    }
  };
}

const program = new Command('docstokg')
  .description('Download the PDFs listed in manifests into a verified, content-addressed store')
  .version(version(), '--version')
  .exitOverride()
  .showHelpAfterError('(docstokg <command> --help lists its options)')
  .configureOutput({ writeErr: (s) => process.stderr.write(s) });

addOptions(program.command('download').argument('<manifest...>', 'JSONL/OpenAlex/URL-list files, gzip or not; - for stdin'), [...SHARED_OPTIONS, ...DOWNLOAD_OPTIONS])
  .description('download every item of the manifests and record everything in the ledger')
  .action(
    action<DownloadOptions>(DOWNLOAD_OPTIONS, async (opts, args) => {
      const { runDownload } = await import('./commands/download.js');
      return runDownload(args, opts, process.argv.slice(2));
    }),
  );

addOptions(program.command('reconcile'), [...SHARED_OPTIONS, ...RECONCILE_OPTIONS])
  .description('repair ledger and store after a crash or manual tampering')
  .action(
    action<ReconcileOptions>(RECONCILE_OPTIONS, async (opts) => {
      const { runReconcile } = await import('./commands/reconcile.js');
      return runReconcile(opts);
    }),
  );

addOptions(program.command('status'), [...SHARED_OPTIONS, ...STATUS_OPTIONS])
  .description('counts by state, bytes stored, failure reasons, hosts in trouble; --runs lists past runs')
  .action(
    action<StatusOptions>(STATUS_OPTIONS, async (opts) => {
      const { runStatus } = await import('./commands/status.js');
      return runStatus(opts);
    }),
  );

addOptions(program.command('export'), [...SHARED_OPTIONS, ...EXPORT_OPTIONS])
  .description("print the ledger's per-item results as JSONL (default) or CSV")
  .action(
    action<ExportOptions>(EXPORT_OPTIONS, async (opts) => {
      const { runExport } = await import('./commands/export.js');
      return runExport(opts);
    }),
  );

process.on('uncaughtException', (err) => void fail(err));

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // --help and --version succeed; help shown because no command was given is a usage error.
    const ok = err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || (err.code === 'commander.help' && err.exitCode === 0);
    await finish(ok ? EXIT.ok : EXIT.usage);
  }
  await fail(err);
}

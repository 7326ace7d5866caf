import { UsageError } from './errors.js';

/**
 * Every option of every command, with its default, in one table. The CLI registers flags from it,
 * and `resolveOptions` merges flag > environment (`DOCSTOKG_<FLAG>`) > default and validates once.
 */
type Kind = 'int' | 'size' | 'seconds' | 'ms' | 'string' | 'list' | 'bool' | 'negbool' | 'enum';

export interface OptionSpec {
  /** long flag without dashes; for `negbool` the flag is `--no-<flag>` */
  flag: string;
  short?: string;
  kind: Kind;
  arg?: string;
  default?: string | number | boolean;
  choices?: readonly string[];
  min?: number;
  help: string;
}

/** How long a ledger write waits for another process's transaction, unless --lock-timeout says. */
export const LOCK_TIMEOUT_S = 15;

export const SHARED_OPTIONS: readonly OptionSpec[] = [
  { flag: 'out', short: 'o', kind: 'string', arg: 'dir', default: './pdfs', help: 'content-addressed store: a directory, or s3://bucket/prefix' },
  { flag: 'db', kind: 'string', arg: 'path|url', help: 'ledger: a SQLite file (default: <out>/docstokg.sqlite; ./docstokg.sqlite for an s3:// store) or a postgres:// URL' },
  { flag: 's3-endpoint', kind: 'string', arg: 'url', help: 'S3-compatible service other than AWS (MinIO, Ceph, R2): its URL, path-style addressing' },
  { flag: 'staging', kind: 'string', arg: 'dir', help: 'local directory for parts of an s3:// store (default: docstokg-staging beside the ledger)' },
  { flag: 'json', kind: 'bool', default: false, help: 'machine-readable output on stdout' },
  { flag: 'lock-timeout', kind: 'seconds', arg: 's', default: LOCK_TIMEOUT_S, min: 0, help: 'how long to wait for a ledger locked by another process' },
];

const QUIET: OptionSpec = { flag: 'quiet', short: 'q', kind: 'bool', default: false, help: 'no progress or summary on stderr' };

export const DOWNLOAD_OPTIONS: readonly OptionSpec[] = [
  QUIET,
  { flag: 'verbose', short: 'v', kind: 'bool', default: false, help: 'one line per finished item on stderr (above the progress bar)' },
  { flag: 'concurrency', short: 'c', kind: 'int', arg: 'n', default: 16, min: 1, help: 'items in flight in total (until the body is in and checked)' },
  { flag: 'per-host', kind: 'int', arg: 'n', default: 4, min: 1, help: 'items in flight per host (the lower of this and the host\'s max_concurrent)' },
  { flag: 'ratelimits', kind: 'string', arg: 'file', help: 'per-host rate and concurrency policy (ratelimits.yaml format; default: config/ratelimits.default.yaml)' },
  { flag: 'breakers', kind: 'string', arg: 'file', help: 'per-host circuit breaker policy (breakers.yaml format; default: config/breakers.default.yaml)' },
  { flag: 'retries', kind: 'int', arg: 'n', default: 3, min: 0, help: 'retries per URL after the first attempt, for transient failures only' },
  { flag: 'retry-delay', kind: 'ms', arg: 'ms', default: 500, min: 0, help: 'base of the exponential backoff: a delay uniform in [0, base × 2^n], at most 30 s' },
  { flag: 'retry-after-cap', kind: 'seconds', arg: 's', default: 120, min: 0, help: 'longest Retry-After honoured; longer ones leave the item pending (retry_after_too_long)' },
  { flag: 'connect-timeout', kind: 'seconds', arg: 's', default: 10, min: 0.001, help: 'TCP and TLS connect timeout (timeout)' },
  { flag: 'stall-timeout', kind: 'seconds', arg: 's', default: 30, min: 0.001, help: 'no response byte (headers or body) for this long aborts the attempt (stalled)' },
  { flag: 'min-speed', kind: 'size', arg: 'size', default: '1KiB', min: 0, help: 'abort a body slower than this many bytes/s over a --stall-timeout window (0: off)' },
  { flag: 'max-bytes', kind: 'size', arg: 'size', default: '512MiB', min: 1, help: 'larger files fail as too_large (declared, or mid-stream without fetching the rest)' },
  { flag: 'min-free', kind: 'size', arg: 'size', default: '1GiB', min: 0, help: 'free disk space to keep: an item that would go below it fails as quota' },
  { flag: 'revalidate', kind: 'bool', default: false, help: 'ask again for items already done, with their validators (304 = unchanged)' },
  { flag: 'retry-failed', kind: 'bool', default: false, help: 'ask again for items that failed in earlier runs, permanent failures and those not yet due included' },
  { flag: 'link-dir', kind: 'string', arg: 'dir', help: 'also expose each item as <dir>/<safe id>.pdf (hard link; a copy where linking fails)' },
  { flag: 'dry-run', kind: 'bool', default: false, help: 'plan and report (status planned) without network and without writing to --out or the ledger' },
  { flag: 'progress', kind: 'negbool', default: true, help: 'no progress bar or periodic lines' },
  { flag: 'fsync', kind: 'negbool', default: true, help: 'skip fsync of files and directories (not power-loss safe)' },
  { flag: 'lease-ttl', kind: 'seconds', arg: 's', default: 60, min: 1, help: 'lease length; renewed every quarter of it while an item runs' },
  { flag: 'log-format', kind: 'enum', arg: 'fmt', default: 'text', choices: ['text', 'json'], help: 'events on stderr: human text, or one JSON object per line' },
  { flag: 'metrics-file', kind: 'string', arg: 'path', help: 'Prometheus text file, rewritten atomically every 15 s and at the end' },
  { flag: 'deny-private', kind: 'bool', default: false, help: 'refuse loopback, private, link-local, unique-local, CGNAT, multicast and reserved addresses (after DNS, at every redirect hop)' },
  { flag: 'allow-host', kind: 'list', arg: 'host', default: '', help: 'fetch only from these hosts (repeatable; *.example.org for subdomains)' },
  { flag: 'deny-host', kind: 'list', arg: 'host', default: '', help: 'never fetch from these hosts (repeatable; *.example.org for subdomains)' },
  { flag: 'host-headers', kind: 'string', arg: 'file', help: 'per-host request headers such as API keys (YAML; ${VAR} reads the environment)' },
  { flag: 'user-agent', kind: 'string', arg: 's', default: 'docstokg/0.1 (+https://www.npmjs.com/package/docstokg)', help: 'User-Agent header' },
  { flag: 'mailto', kind: 'string', arg: 'addr', help: 'contact address: added to the User-Agent and to API requests (OpenAlex, Crossref); Unpaywall runs only with it' },
  { flag: 'http2', kind: 'bool', default: false, help: 'HTTP/2 where a server offers it (ALPN); HTTP/1.1 otherwise' },
  { flag: 'ca-file', kind: 'string', arg: 'pem', help: 'also trust the certificates in this PEM file (a private CA or an institutional proxy), beside Node.js\'s bundled roots and NODE_EXTRA_CA_CERTS' },
  { flag: 'resolvers', kind: 'string', arg: 'file', help: 'resolver order, base URLs and landing pages for identifier lines (YAML; default: config/resolvers.default.yaml)' },
  { flag: 'cache-ttl', kind: 'seconds', arg: 's', default: 604800, min: 0, help: 'how long a metadata answer without freshness headers is reused (HTTP cache in the ledger)' },
];

export const RECONCILE_OPTIONS: readonly OptionSpec[] = [
  { ...QUIET, help: 'print nothing on stdout (the exit code tells)' },
  { flag: 'dry-run', kind: 'bool', default: false, help: 'report what would be repaired, change nothing' },
  { flag: 'verify', kind: 'bool', default: false, help: 're-hash every stored object; quarantine and re-queue corrupt ones' },
  { flag: 'log-format', kind: 'enum', arg: 'fmt', default: 'text', choices: ['text', 'json'], help: 'events on stderr: human text, or one JSON object per line' },
];

export const STATUS_OPTIONS: readonly OptionSpec[] = [
  { flag: 'runs', kind: 'bool', default: false, help: 'list past runs instead' },
];

export const EXPORT_OPTIONS: readonly OptionSpec[] = [
  { flag: 'format', kind: 'enum', arg: 'fmt', default: 'jsonl', choices: ['jsonl', 'csv'], help: 'output format: jsonl or csv' },
  { flag: 'attempts', kind: 'bool', default: false, help: 'one row per HTTP attempt instead of one per item' },
];

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kib: 1024, m: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gib: 1024 ** 3, t: 1024 ** 4, tib: 1024 ** 4 };

/** `512MiB` -> bytes. Accepts an integer with an optional binary suffix. */
export function parseSize(text: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  if (!m) return null;
  const unit = SIZE_UNITS[m[2]!.toLowerCase()];
  if (unit === undefined) return null;
  return Math.floor(Number(m[1]) * unit);
}

export function envName(flag: string): string {
  return `DOCSTOKG_${flag.toUpperCase().replace(/-/g, '_')}`;
}

function camel(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

const TRUE = new Set(['1', 'true', 'yes', 'on']);
const FALSE = new Set(['0', 'false', 'no', 'off', '']);

function coerce(spec: OptionSpec, raw: unknown, origin: string): unknown {
  const name = spec.kind === 'negbool' ? `--no-${spec.flag}` : `--${spec.flag}`;
  const bad = (why: string): never => {
    throw new UsageError(`${name}: ${why} (got ${JSON.stringify(raw)} from ${origin})`);
  };
  if (spec.kind === 'bool' || spec.kind === 'negbool') {
    if (typeof raw === 'boolean') return raw;
    const s = String(raw).trim().toLowerCase();
    if (TRUE.has(s)) return spec.kind === 'bool';
    if (FALSE.has(s)) return spec.kind !== 'bool';
    return bad('expected true or false (1/0, yes/no, on/off also work)');
  }
  if (spec.kind === 'string') return String(raw);
  if (spec.kind === 'list') {
    // Repeated flags arrive as an array; the environment gives one comma-separated string.
    const items = (Array.isArray(raw) ? raw.map(String) : String(raw).split(',')).map((s) => s.trim()).filter((s) => s !== '');
    return Object.freeze(items);
  }
  if (spec.kind === 'enum') {
    const s = String(raw);
    if (!spec.choices!.includes(s)) bad(`expected one of ${spec.choices!.join(', ')}`);
    return s;
  }
  let n: number | null;
  if (spec.kind === 'size') n = typeof raw === 'number' ? raw : parseSize(String(raw));
  else n = /^\s*\d+(\.\d+)?\s*$/.test(String(raw)) ? Number(raw) : null;
  if (n === null || !Number.isFinite(n)) return bad(spec.kind === 'size' ? 'expected a size such as 512MiB' : 'expected a number');
  if (spec.kind === 'int' && !Number.isInteger(n)) bad('expected a whole number');
  if (spec.min !== undefined && n < spec.min) bad(`must be at least ${spec.min}`);
  if (spec.kind === 'seconds') return Math.round(n * 1000);
  return n;
}

/**
 * Merge commander's parsed values (only what the user typed: the table's defaults are not given to
 * commander, so "unset" stays visible), the environment and the defaults. Seconds become ms.
 */
export function resolveOptions<T>(specs: readonly OptionSpec[], given: Record<string, unknown>, env: NodeJS.ProcessEnv): T {
  const out: Record<string, unknown> = {};
  for (const spec of specs) {
    const key = camel(spec.flag);
    const fromEnv = env[envName(spec.kind === 'negbool' ? `no-${spec.flag}` : spec.flag)];
    let value: unknown;
    if (given[key] !== undefined) value = coerce(spec, given[key], 'the command line');
    else if (fromEnv !== undefined) {
      // DOCSTOKG_NO_FSYNC=1 means "--no-fsync given"
      value = spec.kind === 'negbool' ? !coerce({ ...spec, kind: 'bool' }, fromEnv, envName(`no-${spec.flag}`)) : coerce(spec, fromEnv, envName(spec.flag));
    } else if (spec.default !== undefined) value = coerce(spec, spec.default, 'the default');
    out[key] = value;
  }
  return Object.freeze(out) as T;
}

export interface SharedOptions {
  out: string;
  db: string | undefined;
  s3Endpoint: string | undefined;
  staging: string | undefined;
  json: boolean;
  lockTimeout: number;
}

export interface DownloadOptions extends SharedOptions {
  quiet: boolean;
  verbose: boolean;
  concurrency: number;
  perHost: number;
  ratelimits: string | undefined;
  breakers: string | undefined;
  retryAfterCap: number;
  retries: number;
  retryDelay: number;
  connectTimeout: number;
  stallTimeout: number;
  minSpeed: number;
  maxBytes: number;
  minFree: number;
  linkDir: string | undefined;
  revalidate: boolean;
  retryFailed: boolean;
  dryRun: boolean;
  progress: boolean;
  fsync: boolean;
  leaseTtl: number;
  logFormat: 'text' | 'json';
  metricsFile: string | undefined;
  userAgent: string;
  mailto: string | undefined;
  caFile: string | undefined;
  http2: boolean;
  resolvers: string | undefined;
  /** ms */
  cacheTtl: number;
  denyPrivate: boolean;
  allowHost: readonly string[];
  denyHost: readonly string[];
  hostHeaders: string | undefined;
}

export interface ReconcileOptions extends SharedOptions {
  quiet: boolean;
  dryRun: boolean;
  verify: boolean;
  logFormat: 'text' | 'json';
}

export interface StatusOptions extends SharedOptions {
  runs: boolean;
}

export interface ExportOptions extends SharedOptions {
  format: 'jsonl' | 'csv';
  attempts: boolean;
}

export const MAX_REDIRECTS = 10;
/**
 * A transiently failed item is asked again by a later run no sooner than this after its failure,
 * doubling with each run in a row that fails it, up to RETRY_LATER_MAX_MS (SPEC §8).
 */
export const RETRY_LATER_BASE_MS = 10 * 60 * 1000;
export const RETRY_LATER_MAX_MS = 24 * 60 * 60 * 1000;
/** Planned items held in memory ahead of the workers; bounds memory on huge manifests. */
export const PLAN_WINDOW = 2048;
/** Ledger writes grouped per transaction (see DESIGN: one commit per item blocks the loop). */
export const LEDGER_BATCH = 256;
/**
 * How often a host in use reads its row again, for a pause or an open breaker another process
 * sharing the ledger has stored.
 */
export const HOST_ROW_REFRESH_MS = 100;
/** A request that leaves this much after its slot pushes the host's next shared slot back. */
export const LATE_SEND_MS = 5;
/** Items past their transfer (finishing locally) allowed per network slot (--concurrency). */
export const FINISHING_PER_SLOT = 4;
export const PDF_MAGIC_WINDOW = 1024;
/**
 * Distinct items per run whose keys are remembered in memory (12 bytes each, in a table of at
 * most twice as many slots: 48 MiB) before further ones go to a scratch file.
 */
export const SEEN_MEMORY_KEYS = 2 * 1024 * 1024;
/**
 * Longest manifest line read (OpenAlex works with thousands of authors run to a few MB); longer
 * lines are reported invalid and skipped without being held in memory.
 */
export const MAX_LINE_BYTES = 8 * 1024 * 1024;
/**
 * Parts at least this large (or of unknown length) commit their validators and their finished
 * stream at once, so after a crash they are resumed or finalized without fetching them again.
 * Smaller ones ride the grouped commits: losing one costs a small re-fetch, not a commit each.
 */
export const DURABLE_PART_BYTES = 256 * 1024;
/** With no Content-Length, free space is checked again every this many bytes. */
export const QUOTA_RECHECK_BYTES = 16 * 1024 * 1024;
/**
 * Manifests (regular files) at least this large in all have their lines read, parsed and keyed on
 * a second thread when a run can answer done items by key alone (see manifest/keyed-lines.ts).
 * Below it, starting the thread costs more than it saves. DOCSTOKG_KEY_THREAD_MIN_BYTES overrides
 * it (0: always; a huge value: never).
 */
export const KEY_THREAD_MIN_BYTES = envBytes('DOCSTOKG_KEY_THREAD_MIN_BYTES', 4 * 1024 * 1024);
/**
 * The key thread's young generation (V8's default is 16 MB a semi-space): its garbage is short
 * lived, and a second heap that size raised the peak RSS of a 1M-line re-run (docs/decisions.md).
 */
export const KEY_THREAD_YOUNG_MB = 2;

/**
 * Objects at least this large go to an S3 store in parts (16 MiB each, four at a time).
 * DOCSTOKG_S3_MULTIPART_MIN_BYTES overrides it.
 */
export const S3_MULTIPART_MIN_BYTES = envBytes('DOCSTOKG_S3_MULTIPART_MIN_BYTES', 64 * 1024 * 1024);

function envBytes(name: string, fallback: number): number {
  const v = process.env[name];
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : fallback;
}
/**
 * Bytes a connection reads ahead of the body's consumer (undici's default is one TLS record, 16
 * KiB). While a part's writes hold the body back, the socket keeps reading into this, and undici
 * then parses what piled up in one piece rather than record by record.
 */
export const SOCKET_READ_AHEAD_BYTES = 256 * 1024;
/**
 * Hosts (with their ports) whose latest TLS session is kept for resuming the next connection to
 * them (a ticket is a few hundred bytes to a few KB).
 */
export const TLS_SESSION_HOSTS = 1024;
/** Slots of the heap ballast a run that downloads keeps (8 bytes each: 8 MiB); see runtime-tuning.ts. */
export const HEAP_BALLAST_SLOTS = 1024 * 1024;

/** The User-Agent of every request: the option, with the --mailto address. */
export function userAgent(opts: Pick<DownloadOptions, 'userAgent' | 'mailto'>): string {
  return opts.mailto ? `${opts.userAgent} (mailto:${opts.mailto})` : opts.userAgent;
}

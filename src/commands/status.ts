import type { StatusOptions } from '../config.js';
import { openExisting } from '../ledger/locate.js';
import type { Ledger } from '../ledger/types.js';
import { formatBytes } from '../progress.js';
import { EXIT_PIPE, writeOut } from '../stdout.js';

const DAY_MS = 86_400_000;

interface HostView {
  host: string;
  breaker: string;
  open_until: string | null;
  cooldown_until: string | null;
  failures: number;
  recent_failures: number;
  last_error: string | null;
}

/** Hosts worth a look: an open breaker, a cool-down still running, or failures in the last day. */
function hostViews(ledger: Ledger, now: number): HostView[] {
  const recent = ledger.queries.recentFailures(now - DAY_MS);
  const rows = ledger.queries.hosts();
  const names = new Set([...rows.keys(), ...recent.keys()]);
  const iso = (t: number | undefined): string | null => (t && t > now ? new Date(t).toISOString() : null);
  return [...names].sort().map((host) => {
    const r = rows.get(host);
    const open = r && r.breaker_state !== 'closed' && r.open_until > now;
    return {
      host,
      breaker: open ? r.breaker_state : 'closed',
      open_until: open ? iso(r.open_until) : null,
      cooldown_until: iso(r?.cooldown_until),
      failures: r?.failures ?? 0,
      recent_failures: recent.get(host) ?? 0,
      last_error: r?.last_error ?? null,
    };
  }).filter((h) => h.breaker !== 'closed' || h.cooldown_until !== null || h.recent_failures > 0);
}

function runsText(ledger: Ledger, json: boolean): string {
  let text = '';
  for (const r of ledger.queries.runs()) {
    const view = {
      id: r.id,
      started_at: new Date(r.started_at).toISOString(),
      ended_at: r.ended_at ? new Date(r.ended_at).toISOString() : null,
      duration_s: r.ended_at ? (r.ended_at - r.started_at) / 1000 : null,
      exit_code: r.exit_code,
      counts: r.counts ? (JSON.parse(r.counts) as Record<string, number>) : null,
      argv: JSON.parse(r.argv) as string[],
    };
    if (json) text += `${JSON.stringify(view)}\n`;
    else {
      const counts = view.counts ? Object.entries(view.counts).filter(([, v]) => v).map(([k, v]) => (k === 'bytes' ? formatBytes(v) : `${k} ${v}`)).join(', ') : 'did not finish';
      text += `${view.started_at}  ${view.duration_s === null ? '-' : `${view.duration_s.toFixed(1)} s`}  exit ${view.exit_code ?? '-'}  ${counts}  docstokg ${view.argv.join(' ')}\n`;
    }
  }
  return text;
}

function statusText(ledger: Ledger, json: boolean): string {
  const c = ledger.queries.counts();
  const hosts = hostViews(ledger, Date.now());
  if (json) {
    const view = { states: c.byState, statuses: c.byStatus, reasons: c.byReason, resolvers: c.byResolver, failed_permanently: c.failedPermanently, invalid_lines: c.invalidLines, objects: c.objects, bytes_stored: c.bytesStored, hosts };
    return `${JSON.stringify(view)}\n`;
  }
  const line = (o: Record<string, number>): string => Object.entries(o).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
  let text =
    `jobs by state:   ${line(c.byState)}\n` +
    `last status:     ${line(c.byStatus)}\n` +
    `failure reasons: ${line(c.byReason)}\n`;
  if (Object.keys(c.byResolver).some((k) => k !== 'manifest')) text += `done, URL from:  ${line(c.byResolver)}\n`;
  if (c.failedPermanently > 0) text += `not asked again: ${c.failedPermanently} failed permanently (download --retry-failed asks again)\n`;
  if (c.invalidLines > 0) text += `invalid lines:   ${c.invalidLines} (docstokg export | jq 'select(.status == "invalid")')\n`;
  text += `objects stored:  ${c.objects} (${formatBytes(c.bytesStored)})\n`;
  for (const h of hosts) {
    const parts = [`breaker ${h.breaker}${h.open_until ? ` until ${h.open_until}` : ''}`];
    if (h.cooldown_until) parts.push(`cool-down until ${h.cooldown_until}`);
    parts.push(`${h.recent_failures} failure${h.recent_failures === 1 ? '' : 's'} in 24 h${h.last_error ? ` (last: ${h.last_error})` : ''}`);
    text += `host ${h.host}: ${parts.join(', ')}\n`;
  }
  return text;
}

export async function runStatus(opts: StatusOptions): Promise<number> {
  const ledger = openExisting(opts);
  let text: string;
  try {
    text = opts.runs ? runsText(ledger, opts.json) : statusText(ledger, opts.json);
  } finally {
    ledger.close();
  }
  return (await writeOut(text)) ? 0 : EXIT_PIPE;
}

import { userAgent, type DownloadOptions } from '../config.js';
import type { Events } from '../events.js';
import { laterFor } from '../http/classify.js';
import { cachedGet, type CachedAnswer, type CachedGetContext } from '../http/cached-get.js';
import type { RequestGate } from '../http/request-gate.js';
import type { Role } from '../hosts/policy.js';
import type { CacheStore } from '../ledger/types.js';
import { toCandidate, type Candidate, type Item } from '../manifest/parse.js';
import { askNext, METADATA_MAX_BYTES } from '../resolve/chain.js';
import type { ResolverConfig, ResolverName } from '../resolve/config.js';
import { pdfLinks } from '../resolve/landing.js';
import { ROBOTS_MAX_BYTES, type RobotsRules } from '../resolve/robots.js';
import type { HtmlPage } from './page-sink.js';

/** What a run gives the resolvers (null when no item of it names a work). */
export interface ResolveServices {
  config: ResolverConfig;
  mailto: string | null;
  cache: { store: CacheStore; ttlS: number };
  robots: RobotsRules;
  /** headers of metadata requests (a JSON Accept, the User-Agent with --mailto) */
  headers: Record<string, string>;
}

/** Headers of metadata requests: the same in a run and in --dry-run, whose cache look-ups must match. */
export function metadataHeaders(opts: Pick<DownloadOptions, 'userAgent' | 'mailto'>): Record<string, string> {
  return { 'user-agent': userAgent(opts), accept: 'application/json' };
}

/** One URL to try for an item, with where it came from. */
export interface Target {
  candidate: Candidate;
  /** `landing`: a page a resolver named, asked under its host's landing limits after robots.txt */
  role: Role;
  resolver: ResolverName | null;
  /** the landing page that named this URL */
  landingUrl: string | null;
  /** named by a landing page: an HTML answer of its own is not read again */
  fromPage: boolean;
}

/** Where an item stands among its URLs: the rest of the queue and the next resolver to ask. */
export interface TargetState {
  queue: Target[];
  tried: Set<string>;
  nextResolver: number;
  /** why resolvers and landing pages gave nothing, for the no_url message */
  notes: string[];
  /** an API could not be asked (down, throttled, unreachable): it may place the work later */
  unreachable: boolean;
}

export function initialTargets(item: Item): TargetState {
  const queue = item.candidates.map((candidate): Target => ({ candidate, role: 'artifact', resolver: null, landingUrl: null, fromPage: false }));
  return { queue, tried: new Set(), nextResolver: 0, notes: [], unreachable: false };
}

export interface TargetContext {
  resolve: ResolveServices | null;
  dispatcher: () => Promise<CachedGetContext['dispatcher']>;
  policy: CachedGetContext['policy'];
  gate: RequestGate;
  signal: AbortSignal;
  events: Events;
}

/**
 * An item's URLs in order (SPEC §9): the manifest's, then each resolver's (asked only when the
 * URLs before have all failed), with the PDF links of any HTML page met on the way tried right
 * after that page. Landing pages a resolver names are asked only where robots.txt allows.
 */
export class Targets {
  constructor(
    private readonly ctx: TargetContext,
    private readonly item: Item,
    readonly state: TargetState,
  ) {}

  /** The next URL to try; null when every URL and every resolver is spent. */
  async next(): Promise<Target | null> {
    for (;;) {
      const t = this.state.queue.shift();
      if (t) {
        if (this.state.tried.has(t.candidate.canonical)) continue;
        this.state.tried.add(t.candidate.canonical);
        if (t.role === 'landing' && !(await this.robotsAllow(t.candidate.href))) continue;
        return t;
      }
      if (!(await this.askResolver())) return null;
    }
  }

  /** An HTML answer: the PDF links it names go first, if robots.txt lets the page be read. */
  async fromPage(from: Target, page: HtmlPage): Promise<void> {
    if (!this.ctx.resolve?.config.landing || from.fromPage) return;
    if (from.role !== 'landing' && !(await this.robotsAllow(page.pageUrl))) return;
    const found: Target[] = [];
    for (const url of pdfLinks(page.html, page.pageUrl)) {
      const candidate = toCandidate(url);
      if (candidate) found.push({ candidate, role: 'artifact', resolver: from.resolver, landingUrl: page.pageUrl, fromPage: true });
    }
    if (found.length === 0) this.state.notes.push(`${page.pageUrl} is an HTML page that names no PDF`);
    this.state.queue.unshift(...found);
  }

  private async askResolver(): Promise<boolean> {
    const r = this.ctx.resolve;
    if (!r || !this.item.ids) return false;
    const got = await askNext({ config: r.config, mailto: r.mailto, events: this.ctx.events, itemId: this.item.id, get: (url) => this.get(url, 'metadata', METADATA_MAX_BYTES) }, this.item.ids, this.state.nextResolver);
    if (!got) return false;
    this.state.nextResolver = got.next;
    const { asked } = got;
    if ('failed' in asked) {
      this.state.notes.push(`${asked.resolver}: ${asked.message} (${asked.failed})`);
      if (asked.failed !== 'bad_json' && asked.failed !== 'bad_shape' && laterFor(asked.failed) === 'backoff') this.state.unreachable = true;
      return true;
    }
    for (const lead of asked.leads) {
      const candidate = toCandidate(lead.url);
      if (candidate) this.state.queue.push({ candidate, role: lead.landing ? 'landing' : 'artifact', resolver: asked.resolver, landingUrl: null, fromPage: false });
    }
    return true;
  }

  private async robotsAllow(url: string): Promise<boolean> {
    const r = this.ctx.resolve;
    if (!r) return true;
    const allowed = await r.robots.allows(url, (robotsUrl) => this.get(robotsUrl, 'landing', ROBOTS_MAX_BYTES, { accept: 'text/plain,*/*;q=0.5' }));
    if (!allowed) {
      this.state.notes.push(`robots.txt does not allow ${url}`);
      this.ctx.events.emit('robots_disallowed', { id: this.item.id, url });
    }
    return allowed;
  }

  private async get(url: string, role: Role, maxBytes: number, headers: Record<string, string> = {}): Promise<CachedAnswer> {
    const r = this.ctx.resolve!;
    const ctx: CachedGetContext = { dispatcher: await this.ctx.dispatcher(), cache: r.cache, headers: { ...r.headers, ...headers }, policy: this.ctx.policy, gate: this.ctx.gate, signal: this.ctx.signal };
    return cachedGet(ctx, url, role, maxBytes);
  }
}

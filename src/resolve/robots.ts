import robotsModule from 'robots-parser';
import { LookupError } from '../errors.js';
import type { CachedAnswer } from '../http/cached-get.js';

/** robots.txt larger than this is read only up to here (RFC 9309 asks crawlers to read at least 500 KiB). */
export const ROBOTS_MAX_BYTES = 512 * 1024;
/** The product token robots.txt groups are matched against. */
export const ROBOTS_AGENT = 'docstokg';
/** Hosts whose robots.txt is kept in memory for the run (the HTTP cache keeps it across runs). */
const KEEP_HOSTS = 4096;

type Parsed = { isAllowed(url: string, ua?: string): boolean | undefined };
type Rules = Parsed | 'allow-all' | 'disallow-all';

// robots-parser is CommonJS whose export is the function; its typings declare an ES default.
const robotsParser = robotsModule as unknown as (url: string, text: string) => Parsed;

/**
 * robots.txt of each landing page's host, fetched once per run and host (RFC 9309): a 2xx is
 * parsed with robots-parser, a 4xx allows everything, a 5xx or a host that cannot be reached
 * disallows everything. Only landing pages are checked: PDF URLs were named by the manifest or an
 * API, not found by crawling.
 */
export class RobotsRules {
  private readonly hosts = new Map<string, Promise<Rules>>();

  /** `fetch` asks for a robots.txt (under the landing role of its host, through the HTTP cache). */
  async allows(url: string, fetch: (robotsUrl: string) => Promise<CachedAnswer>): Promise<boolean> {
    const { origin } = new URL(url);
    let rules = this.hosts.get(origin);
    if (!rules) {
      if (this.hosts.size >= KEEP_HOSTS) this.hosts.clear();
      rules = this.load(origin, fetch);
      this.hosts.set(origin, rules);
      // A fetch that did not end (the host asked to wait, the run stopped) is not a verdict.
      rules.catch(() => this.hosts.delete(origin));
    }
    const r = await rules;
    if (r === 'allow-all') return true;
    if (r === 'disallow-all') return false;
    return r.isAllowed(url, ROBOTS_AGENT) !== false;
  }

  private async load(origin: string, fetch: (robotsUrl: string) => Promise<CachedAnswer>): Promise<Rules> {
    const robotsUrl = `${origin}/robots.txt`;
    let answer: CachedAnswer;
    try {
      answer = await fetch(robotsUrl);
    } catch (err) {
      if (err instanceof LookupError) return 'disallow-all';
      throw err;
    }
    if (answer.status >= 200 && answer.status < 300) return robotsParser(robotsUrl, answer.body.toString('utf8'));
    if (answer.status >= 400 && answer.status < 500) return 'allow-all';
    return 'disallow-all';
  }
}

import { hash } from 'node:crypto';
import { bareIdentifier, hasIds, noIds, parseArxiv, parseDoi, parseOpenAlex, parsePmcid, withArxivDoi, type WorkIds } from '../resolve/ids.js';
import { alreadyCanonical, canonicalizeUrl, redactCredentials } from './canonical-url.js';
import type { ManifestLine } from './read.js';

/** A fetchable candidate: `href` is requested, `canonical` is the ledger key. */
export interface Candidate {
  href: string;
  canonical: string;
  host: string;
  /** Basic authorization from credentials written in the URL; sent to its own origin only */
  auth: string | null;
}

export interface Item {
  key: string;
  id: string;
  doi: string | null;
  /** identifiers the resolvers can place (SPEC §9), tried after the candidates; null when none */
  ids: WorkIds | null;
  candidates: Candidate[];
  /** URLs given but never fetched (non-http schemes) */
  blocked: string[];
  expectedSha256: string | null;
  source: string;
}

export type Parsed =
  | { kind: 'item'; item: Item }
  | { kind: 'invalid'; source: string; message: string }
  | { kind: 'empty' };

type Json = Record<string, unknown>;

const OPENALEX = /^https?:\/\/openalex\.org\/(W\d+)$/i;
const SHA256 = /^[0-9a-f]{64}$/i;

function invalid(source: string, message: string): Parsed {
  return { kind: 'invalid', source, message: redactCredentials(message) };
}

function normalizeDoi(doi: string): string {
  return doi.trim().replace(/^(?:https?:\/\/(?:dx\.)?doi\.org\/|doi:)/i, '').toLowerCase();
}

function pdfUrl(location: unknown): unknown {
  return location && typeof location === 'object' ? (location as Json).pdf_url : undefined;
}

/** OpenAlex order: best OA location, primary location, every location, then open_access.oa_url. */
export function openAlexUrls(work: Json): unknown[] {
  const locations = Array.isArray(work.locations) ? work.locations : [];
  const oa = work.open_access && typeof work.open_access === 'object' ? (work.open_access as Json).oa_url : undefined;
  return [pdfUrl(work.best_oa_location), pdfUrl(work.primary_location), ...locations.map(pdfUrl), oa].filter(
    (u) => u !== null && u !== undefined,
  );
}

/** A URL found by a resolver or on a landing page, as a candidate; null when it may not be fetched. */
export function toCandidate(raw: string): Candidate | null {
  const c = canonicalizeUrl(raw);
  return c.ok ? { href: c.href, canonical: c.url, host: c.host, auth: null } : null;
}

/** SHA-256 of canonical JSON (fixed key order) of the id and canonical candidate URLs. */
export function jobKey(id: string, urls: readonly string[]): string {
  // One-shot hash: a Hash object per line costs more than the digest itself on a re-run.
  return hash('sha256', JSON.stringify({ id, urls }), 'hex');
}

function build(source: string, rawUrls: unknown[], id: unknown, doi: unknown, sha256: unknown, openAlex: boolean, ids: WorkIds | null = null): Parsed {
  const candidates: Candidate[] = [];
  const blocked: string[] = [];
  const seen = new Set<string>();
  for (const raw of rawUrls) {
    if (typeof raw !== 'string' || raw.trim() === '') {
      if (openAlex) continue;
      return invalid(source, `url must be a non-empty string, got ${JSON.stringify(raw)}`);
    }
    const c = canonicalizeUrl(raw);
    if (!c.ok && c.why === 'unparseable') {
      if (openAlex) continue;
      return invalid(source, `not a valid URL: ${JSON.stringify(raw)}`);
    }
    if (seen.has(c.url)) continue;
    seen.add(c.url);
    if (c.ok) candidates.push({ href: c.href, canonical: c.url, host: c.host, auth: c.auth });
    else blocked.push(c.url);
  }
  if (id !== undefined && id !== null && typeof id !== 'string' && typeof id !== 'number') {
    return invalid(source, `id must be a string or a number, got ${JSON.stringify(id)}`);
  }
  if (doi !== undefined && doi !== null && typeof doi !== 'string') {
    return invalid(source, `doi must be a string, got ${JSON.stringify(doi)}`);
  }
  if (sha256 !== undefined && sha256 !== null && (typeof sha256 !== 'string' || !SHA256.test(sha256))) {
    return invalid(source, `sha256 must be 64 hex digits, got ${JSON.stringify(sha256)}`);
  }
  const normDoi = typeof doi === 'string' && doi.trim() !== '' ? normalizeDoi(doi) : null;
  let itemId = id === undefined || id === null || id === '' ? null : String(id);
  const short = itemId ? OPENALEX.exec(itemId) : null;
  if (short) itemId = short[1]!.toUpperCase();
  itemId ??= normDoi ?? candidates[0]?.canonical ?? blocked[0] ?? null;
  if (itemId === null) return invalid(source, 'item has no id, doi or url');
  const urls = [...candidates.map((c) => c.canonical), ...blocked];
  return {
    kind: 'item',
    item: {
      key: jobKey(itemId, urls),
      id: itemId,
      doi: normDoi,
      ids: hasIds(ids) ? ids : null,
      candidates,
      blocked,
      expectedSha256: typeof sha256 === 'string' ? sha256.toLowerCase() : null,
      source,
    },
  };
}

/** Where a line is, as records give it (`source`). */
export function sourceOf(file: string, line: number): string {
  return `${file}:${line}`;
}

/**
 * The job key of a line that is a bare URL already in canonical form (a URL list's usual line),
 * without building the item: parseLine would give it this key. Null for any other line.
 */
export function bareUrlKey(line: ManifestLine): string | null {
  if (line.problem || alreadyCanonical(line.text) === null) return null;
  return jobKey(line.text, [line.text]);
}

/** Judges one manifest line on its own: JSON object, OpenAlex work, bare URL, blank or comment. */
export function parseLine(line: ManifestLine): Parsed {
  const source = sourceOf(line.file, line.line);
  if (line.problem) return invalid(source, line.problem);
  const text = line.text.trim();
  if (text === '' || text.startsWith('#')) return { kind: 'empty' };
  if (!/^[{["]/.test(text)) {
    if (/\s/.test(text)) return invalid(source, 'a bare line must be a single URL or identifier');
    const named = bareIdentifier(text);
    if (named) return build(source, [], named.id, named.ids.doi, undefined, false, named.ids);
    if (!/^[a-z][a-z0-9+.-]*:/i.test(text)) return invalid(source, 'not JSON, not a URL and not a DOI, OpenAlex, arXiv or PMC id');
    return build(source, [text], undefined, undefined, undefined, false);
  }
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (err) {
    return invalid(source, `invalid JSON: ${(err as Error).message}`);
  }
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) return invalid(source, 'expected a JSON object');
  const o = obj as Json;
  if (o.url !== undefined || o.urls !== undefined) {
    if (o.urls !== undefined && !Array.isArray(o.urls)) return invalid(source, 'urls must be an array of strings');
    const urls = [...(o.url !== undefined ? [o.url] : []), ...((o.urls as unknown[] | undefined) ?? [])];
    if (urls.length === 0) return invalid(source, 'urls is empty');
    return build(source, urls, o.id, o.doi, o.sha256, false, idsOf(o));
  }
  if (typeof o.id === 'string' && OPENALEX.test(o.id)) {
    // The line is OpenAlex's own answer: asking its API again would tell nothing new.
    return build(source, openAlexUrls(o), o.id, o.doi, o.sha256, true, { ...idsOf(o), openalex: null });
  }
  const ids = idsOf(o);
  if (hasIds(ids)) return build(source, [], o.id ?? ids.doi ?? (ids.arxiv ? `arXiv:${ids.arxiv}` : null) ?? ids.pmcid ?? ids.openalex, o.doi, o.sha256, false, ids);
  return invalid(source, 'object has no url, urls, doi, arxiv or pmcid and is not an OpenAlex work');
}

/** Identifiers of a JSON line: `doi`, `arxiv`, `pmcid`, an OpenAlex `id` (or an OpenAlex work's `ids`). */
function idsOf(o: Json): WorkIds {
  const ids = noIds();
  const text = (v: unknown): string | null => (typeof v === 'string' ? v : null);
  const known = o.ids && typeof o.ids === 'object' ? (o.ids as Json) : {};
  ids.doi = parseDoi(text(o.doi) ?? text(known.doi) ?? '');
  ids.openalex = parseOpenAlex(text(o.id) ?? text(o.openalex) ?? '');
  ids.arxiv = parseArxiv(text(o.arxiv) ?? '');
  // OpenAlex writes a PMCID as a PMC article URL ending in its digits.
  const pmcUrl = /\/pmc\/articles\/(?:PMC)?(\d+)\/?$/i.exec(text(known.pmcid) ?? '');
  ids.pmcid = parsePmcid(text(o.pmcid) ?? (pmcUrl ? `PMC${pmcUrl[1]}` : ''));
  return withArxivDoi(ids);
}

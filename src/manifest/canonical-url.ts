/**
 * The ledger key of a URL. WHATWG URL parsing already lowercases scheme and host, converts IDN to
 * punycode, drops default ports, removes dot segments and turns an empty path into `/`; on top of
 * that the fragment is dropped and percent-escapes in the path are normalized (a lone `%` becomes
 * `%25`, unreserved characters are decoded, hex digits uppercased). The query is kept as written.
 * Credentials (`user:pass@`) never become part of a key, a record or a log line: they are taken
 * out of the URL and carried as a Basic authorization for that URL's own origin.
 */
const UNRESERVED = /[A-Za-z0-9\-._~]/;

function normalizeEscapes(path: string): string {
  if (!path.includes('%')) return path;
  // Every `%` then starts a valid escape, so decoding can never form a new one.
  const escaped = path.replace(/%(?![0-9a-fA-F]{2})/g, '%25');
  return escaped.replace(/%([0-9a-fA-F]{2})/g, (_, hex: string) => {
    const ch = String.fromCharCode(parseInt(hex, 16));
    return UNRESERVED.test(ch) ? ch : `%${hex.toUpperCase()}`;
  });
}

export type CanonicalResult =
  | { ok: true; url: string; href: string; host: string; auth: string | null }
  | { ok: false; why: 'unparseable' | 'scheme'; url: string };

/** Replaces any `//user:pass@` in a text (URLs inside messages) with `//***@`. */
export function redactCredentials(text: string): string {
  return text.replace(/\/\/[^/?#\s@]*@/g, '//***@');
}

function basicAuth(url: URL): string | null {
  if (url.username === '' && url.password === '') return null;
  const decode = (s: string): string => {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  };
  const token = Buffer.from(`${decode(url.username)}:${decode(url.password)}`).toString('base64');
  url.username = '';
  url.password = '';
  return `Basic ${token}`;
}

/**
 * A URL that is already in canonical form, recognized without parsing it: lower-case http(s), a
 * plain ASCII host (an IPv4 address only as a canonical dotted quad), no credentials, no default
 * port, a path of characters URL parsing leaves alone with no dot segments and no escapes, no
 * fragment. Parsing such a URL would return it unchanged; this answers the common case of large
 * manifests (URL parsing is about a third of keying a line) and anything else takes the full path.
 */
const PLAIN = /^(https?):\/\/((?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)*([a-z0-9](?:[a-z0-9-]*[a-z0-9])?))(?::([1-9][0-9]{0,4}))?(\/[A-Za-z0-9\-._~!$&()*+,;=:@/]*)(?:\?[A-Za-z0-9\-._~!$&()*+,;=:@/?%]*)?$/;
const DOT_SEGMENT = /\/\.\.?(?:\/|$)/;
/** A last label WHATWG reads as a number makes the host an IPv4 address: kept only as a canonical dotted quad. */
const NUMERIC_LABEL = /^(?:[0-9]+|0x[0-9a-f]*)$/;
const OCTET = '(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])';
const IPV4 = new RegExp(`^(?:${OCTET}\\.){3}${OCTET}$`);
const DEFAULT_PORT: Record<string, string> = { http: '80', https: '443' };

export function alreadyCanonical(raw: string): CanonicalResult | null {
  const m = PLAIN.exec(raw);
  if (!m) return null;
  const [, scheme, host, last, port, path] = m as unknown as [string, string, string, string, string | undefined, string];
  if (host.includes('--') || (NUMERIC_LABEL.test(last) && !IPV4.test(host)) || DOT_SEGMENT.test(path)) return null;
  if (port !== undefined && (port === DEFAULT_PORT[scheme] || Number(port) > 65535)) return null;
  return { ok: true, url: raw, href: raw, host, auth: null };
}

export function canonicalizeUrl(raw: string): CanonicalResult {
  return alreadyCanonical(raw) ?? canonicalizeByParsing(raw);
}

/** The full canonicalization: WHATWG parsing, then the rules above. */
export function canonicalizeByParsing(raw: string): CanonicalResult {
  let parsed: URL;
  try {
    parsed = new URL(raw.trim());
  } catch {
    return { ok: false, why: 'unparseable', url: redactCredentials(raw) };
  }
  // Setting `hash` reparses the URL: only done when there is one (an empty `#` included).
  if (raw.includes('#')) parsed.hash = '';
  const auth = basicAuth(parsed);
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    return { ok: false, why: 'scheme', url: parsed.href };
  }
  const href = parsed.href;
  const path = normalizeEscapes(parsed.pathname);
  if (path !== parsed.pathname) {
    // Decoding %2E can create new dot segments: parse again so they are removed too.
    parsed = new URL(`${parsed.protocol}//${parsed.host}${path}${parsed.search}`);
  }
  return { ok: true, url: parsed.href, href, host: parsed.hostname, auth };
}

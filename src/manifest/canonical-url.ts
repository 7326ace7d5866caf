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

export function canonicalizeUrl(raw: string): CanonicalResult {
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

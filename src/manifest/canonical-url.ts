/**
 * The ledger key of a URL. WHATWG URL parsing already lowercases scheme and host, converts IDN to
 * punycode, drops default ports, removes dot segments and turns an empty path into `/`; on top of
 * that the fragment is dropped and percent-escapes in the path are normalized (unreserved
 * characters decoded, hex digits uppercased). The query is kept as written.
 */
const UNRESERVED = /[A-Za-z0-9\-._~]/;

function normalizeEscapes(path: string): string {
  return path.replace(/%([0-9a-fA-F]{2})/g, (_, hex: string) => {
    const ch = String.fromCharCode(parseInt(hex, 16));
    return UNRESERVED.test(ch) ? ch : `%${hex.toUpperCase()}`;
  });
}

export type CanonicalResult =
  | { ok: true; url: string; href: string; host: string }
  | { ok: false; why: 'unparseable' | 'scheme'; url: string };

export function canonicalizeUrl(raw: string): CanonicalResult {
  let parsed: URL;
  try {
    parsed = new URL(raw.trim());
  } catch {
    return { ok: false, why: 'unparseable', url: raw };
  }
  parsed.hash = '';
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    return { ok: false, why: 'scheme', url: parsed.href };
  }
  const href = parsed.href;
  const path = normalizeEscapes(parsed.pathname);
  if (path !== parsed.pathname) {
    // Decoding %2E can create new dot segments: parse again so they are removed too.
    parsed = new URL(`${parsed.protocol}//${parsed.host}${path}${parsed.search}`);
  }
  return { ok: true, url: parsed.href, href, host: parsed.hostname };
}

import { Parser } from 'htmlparser2';

/** At most this much of an HTML page is read: the tags that name a PDF are in its head. */
export const LANDING_MAX_BYTES = 1024 * 1024;

/**
 * The PDF links an HTML landing page names, in order and each once, resolved against the page's
 * URL (or its <base href>): `<meta name="citation_pdf_url">` (Highwire tags, which Google Scholar
 * asks publishers for), then `<link rel="alternate" type="application/pdf">`.
 */
export function pdfLinks(html: string, pageUrl: string): string[] {
  const meta: string[] = [];
  const alternate: string[] = [];
  let base = pageUrl;
  const parser = new Parser(
    {
      onopentag(name, a) {
        if (name === 'base' && a.href) base = absolute(a.href, pageUrl) ?? base;
        else if (name === 'meta' && a.name?.toLowerCase() === 'citation_pdf_url' && a.content) meta.push(a.content);
        else if (name === 'link' && a.href && a.type?.toLowerCase() === 'application/pdf' && a.rel?.toLowerCase().split(/\s+/).includes('alternate')) alternate.push(a.href);
      },
    },
    { decodeEntities: true, lowerCaseTags: true, lowerCaseAttributeNames: true },
  );
  parser.end(html);
  const out: string[] = [];
  for (const href of [...meta, ...alternate]) {
    const url = absolute(href.trim(), base);
    if (url && !out.includes(url)) out.push(url);
  }
  return out;
}

function absolute(href: string, base: string): string | null {
  if (!URL.canParse(href, base)) return null;
  const url = new URL(href, base);
  return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
}

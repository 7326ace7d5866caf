import * as z from 'zod/mini';
import { leads, page, pdf, resolver, withContact, type Resolver } from './types.js';

const answer = z.object({
  message: z.object({
    link: z.nullish(z.array(z.object({ URL: z.string(), 'content-type': z.nullish(z.string()) }))),
    resource: z.nullish(z.object({ primary: z.nullish(z.object({ URL: z.nullish(z.string()) })) })),
    URL: z.nullish(z.string()),
  }),
});

/**
 * Crossref works API (`/works/<doi>`): the `link[]` entries whose content type is PDF, then the
 * work's primary resource (its landing page).
 */
export const crossref: Resolver = resolver({
  name: 'crossref',
  step(ids, base, mailto) {
    return ids.doi ? { request: withContact(`${base}/works/${encodeURIComponent(ids.doi)}`, 'mailto', mailto) } : null;
  },
  schema: answer,
  read({ message: m }) {
    const pdfs = (m.link ?? []).filter((l) => l['content-type']?.toLowerCase() === 'application/pdf');
    return leads(
      pdfs.map((l) => pdf(l.URL)),
      [page(m.resource?.primary?.URL ?? m.URL)],
    );
  },
});

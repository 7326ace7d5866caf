import * as z from 'zod/mini';
import { leads, page, pdf, resolver, withContact, type Resolver } from './types.js';

const location = z.nullish(z.object({ pdf_url: z.nullish(z.string()), landing_page_url: z.nullish(z.string()) }));
const work = z.object({
  best_oa_location: location,
  primary_location: location,
  locations: z.nullish(z.array(location)),
  open_access: z.nullish(z.object({ oa_url: z.nullish(z.string()) })),
});

/**
 * OpenAlex works API (`/works/W…` or `/works/doi:…`): PDF URLs in the order a manifest's OpenAlex
 * work gives them (best OA location, primary location, every location, open_access.oa_url), then
 * the landing pages of the same locations.
 */
export const openalex: Resolver = resolver({
  name: 'openalex',
  step(ids, base, mailto) {
    const key = ids.openalex ?? (ids.doi ? `doi:${encodeURIComponent(ids.doi)}` : null);
    return key ? { request: withContact(`${base}/works/${key}`, 'mailto', mailto) } : null;
  },
  schema: work,
  read(w) {
    const all = [w.best_oa_location, w.primary_location, ...(w.locations ?? [])];
    return leads(
      all.map((l) => pdf(l?.pdf_url)),
      [pdf(w.open_access?.oa_url)],
      all.map((l) => page(l?.landing_page_url)),
    );
  },
});

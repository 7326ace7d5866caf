import * as z from 'zod/mini';
import { leads, page, pdf, resolver, type Resolver } from './types.js';

const location = z.nullish(z.object({ url_for_pdf: z.nullish(z.string()), url_for_landing_page: z.nullish(z.string()), url: z.nullish(z.string()) }));
const answer = z.object({ best_oa_location: location, oa_locations: z.nullish(z.array(location)) });

/**
 * Unpaywall (`/v2/<doi>?email=`): its terms ask for an address on every request, so it runs only
 * with --mailto. PDF URLs of the best OA location and then the others, then their landing pages.
 */
export const unpaywall: Resolver = resolver({
  name: 'unpaywall',
  step(ids, base, mailto) {
    if (!ids.doi || !mailto) return null;
    return { request: `${base}/${encodeURIComponent(ids.doi)}?email=${encodeURIComponent(mailto)}` };
  },
  schema: answer,
  read(a) {
    const all = [a.best_oa_location, ...(a.oa_locations ?? [])];
    return leads(
      all.map((l) => pdf(l?.url_for_pdf)),
      all.map((l) => page(l?.url_for_landing_page ?? l?.url)),
    );
  },
});

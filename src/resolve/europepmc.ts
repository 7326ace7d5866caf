import * as z from 'zod/mini';
import { leads, page, pdf, resolver, type Resolver } from './types.js';

const fullText = z.object({ url: z.string(), documentStyle: z.nullish(z.string()), availabilityCode: z.nullish(z.string()) });
const answer = z.object({
  resultList: z.object({
    result: z.nullish(z.array(z.object({ fullTextUrlList: z.nullish(z.object({ fullTextUrl: z.nullish(z.array(fullText)) })) }))),
  }),
});

/** Open access first (OA, then free), then subscription links. */
const RANK: Record<string, number> = { OA: 0, F: 1 };

/**
 * Europe PMC search (`/search?query=PMCID:… or DOI:"…"&resultType=core&format=json`): the first
 * result's full-text links with document style `pdf`, open ones first, then its `html` ones as
 * landing pages.
 */
export const europepmc: Resolver = resolver({
  name: 'europepmc',
  step(ids, base) {
    const query = ids.pmcid ? `PMCID:${ids.pmcid}` : ids.doi ? `DOI:"${ids.doi}"` : null;
    return query ? { request: `${base}/search?query=${encodeURIComponent(query)}&resultType=core&format=json&pageSize=1` } : null;
  },
  schema: answer,
  read(a) {
    const links = a.resultList.result?.[0]?.fullTextUrlList?.fullTextUrl ?? [];
    const ranked = [...links].sort((x, y) => (RANK[x.availabilityCode ?? ''] ?? 2) - (RANK[y.availabilityCode ?? ''] ?? 2));
    return leads(
      ranked.filter((l) => l.documentStyle === 'pdf').map((l) => pdf(l.url)),
      ranked.filter((l) => l.documentStyle === 'html').map((l) => page(l.url)),
    );
  },
});

import * as z from 'zod/mini';
import { leads, pdf, resolver, type Resolver } from './types.js';

/** arXiv: the PDF's URL follows from the id (`<base>/pdf/<id>`); nothing is asked. */
export const arxiv: Resolver = resolver({
  name: 'arxiv',
  step(ids, base) {
    return ids.arxiv ? { leads: leads([pdf(`${base}/pdf/${ids.arxiv}`)]) } : null;
  },
  schema: z.unknown(),
  read: () => [],
});

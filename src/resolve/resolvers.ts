import { arxiv } from './arxiv.js';
import type { ResolverName } from './config.js';
import { crossref } from './crossref.js';
import { europepmc } from './europepmc.js';
import { openalex } from './openalex.js';
import type { Resolver } from './types.js';
import { unpaywall } from './unpaywall.js';

export const RESOLVERS: Record<ResolverName, Resolver> = { openalex, unpaywall, crossref, arxiv, europepmc };

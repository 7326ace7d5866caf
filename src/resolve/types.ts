import * as z from 'zod/mini';
import en from 'zod/v4/locales/en.js';
import type { ResolverName } from './config.js';
import type { WorkIds } from './ids.js';

/** A URL a resolver offers for a work: a PDF, or a landing page to read for one. */
export interface Lead {
  url: string;
  landing: boolean;
}

/** What a resolver needs to place a work: one API request, leads known without asking, or nothing. */
export type Step = { request: string } | { leads: Lead[] } | null;

/** A resolver turns identifiers into one request, and that request's answer into leads. */
export interface Resolver {
  name: ResolverName;
  step(ids: WorkIds, baseUrl: string, mailto: string | null): Step;
  /** the answer's leads, in order and without duplicates; throws ShapeError for an answer of another shape */
  leadsFrom(answer: unknown): Lead[];
}

// zod/mini (a small fraction of zod's load time at every start) with zod's English messages.
z.config(en());

/** An API answer that is not the shape its documentation gives. */
export class ShapeError extends Error {}

/**
 * A resolver from its request, the part of the documented answer it reads (`schema`) and how it
 * reads it: any answer the schema refuses fails the resolver (`bad_shape`), and the next is tried.
 */
export function resolver<T>(def: { name: ResolverName; step: Resolver['step']; schema: z.ZodMiniType<T>; read: (answer: T) => Lead[] }): Resolver {
  return {
    name: def.name,
    step: def.step,
    leadsFrom(answer) {
      const parsed = def.schema.safeParse(answer);
      if (!parsed.success) {
        const issue = parsed.error.issues[0]!;
        throw new ShapeError(`${issue.path.join('.') || '(top level)'}: ${issue.message}`);
      }
      return def.read(parsed.data);
    },
  };
}

/** Leads in order, http(s) only, each URL once. */
export function leads(...groups: (readonly { url: string | null | undefined; landing: boolean }[])[]): Lead[] {
  const seen = new Set<string>();
  const out: Lead[] = [];
  for (const group of groups) {
    for (const { url, landing } of group) {
      if (typeof url !== 'string' || !/^https?:\/\//i.test(url) || seen.has(url)) continue;
      seen.add(url);
      out.push({ url, landing });
    }
  }
  return out;
}

export const pdf = (url: string | null | undefined): { url: string | null | undefined; landing: boolean } => ({ url, landing: false });
export const page = (url: string | null | undefined): { url: string | null | undefined; landing: boolean } => ({ url, landing: true });

/** `?mailto=` (or another key) when an address is given. */
export function withContact(url: string, key: string, mailto: string | null): string {
  return mailto ? `${url}${url.includes('?') ? '&' : '?'}${key}=${encodeURIComponent(mailto)}` : url;
}

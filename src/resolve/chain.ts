import { LookupError, type LookupCode } from '../errors.js';
import type { Events } from '../events.js';
import type { CachedAnswer } from '../http/cached-get.js';
import type { ResolverConfig, ResolverName } from './config.js';
import type { WorkIds } from './ids.js';
import { RESOLVERS } from './resolvers.js';
import { ShapeError, type Lead } from './types.js';

/** A metadata answer larger than this fails its resolver (`too_large`): none is near it. */
export const METADATA_MAX_BYTES = 4 * 1024 * 1024;

export interface ChainContext {
  config: ResolverConfig;
  mailto: string | null;
  /** a metadata GET (cached, gated by the API host's `metadata` role) */
  get: (url: string) => Promise<CachedAnswer>;
  events: Events;
  itemId: string;
}

/** What one resolver gave: its leads, or why none (a stable code and a sentence). */
export type Asked = { resolver: ResolverName; leads: Lead[] } | { resolver: ResolverName; failed: LookupCode; message: string };

/**
 * Resolvers are asked one at a time, in the configured order, and only when the leads of the one
 * before have all failed: a work placed by OpenAlex costs no Crossref request. `next` is the
 * position in the order to ask from; resolvers that cannot place these identifiers are passed.
 */
export async function askNext(ctx: ChainContext, ids: WorkIds, from: number): Promise<{ asked: Asked; next: number } | null> {
  for (let i = from; i < ctx.config.order.length; i += 1) {
    const name = ctx.config.order[i]!;
    const step = RESOLVERS[name].step(ids, ctx.config.baseUrls[name], ctx.mailto);
    if (step === null) continue;
    const asked: Asked = 'leads' in step ? { resolver: name, leads: step.leads } : await askApi(ctx, name, step.request);
    ctx.events.emit('resolve', { id: ctx.itemId, resolver: name, leads: 'leads' in asked ? asked.leads.length : 0, error: 'failed' in asked ? asked.failed : null });
    return { asked, next: i + 1 };
  }
  return null;
}

async function askApi(ctx: ChainContext, name: ResolverName, url: string): Promise<Asked> {
  let answer: CachedAnswer;
  try {
    answer = await ctx.get(url);
  } catch (err) {
    if (err instanceof LookupError) return { resolver: name, failed: err.code, message: err.message };
    throw err;
  }
  if (answer.status === 404) return { resolver: name, failed: 'http_404', message: 'does not know the work' };
  if (answer.status !== 200) return { resolver: name, failed: `http_${answer.status}` as const, message: `answered HTTP ${answer.status}` };
  let json: unknown;
  try {
    json = JSON.parse(answer.body.toString('utf8'));
  } catch (err) {
    return { resolver: name, failed: 'bad_json', message: `answered with invalid JSON: ${(err as Error).message}` };
  }
  try {
    const leads = RESOLVERS[name].leadsFrom(json);
    return leads.length > 0 ? { resolver: name, leads } : { resolver: name, failed: 'no_url', message: 'names no PDF or landing page' };
  } catch (err) {
    if (err instanceof ShapeError) return { resolver: name, failed: 'bad_shape', message: `answered JSON of another shape (${err.message})` };
    throw err;
  }
}

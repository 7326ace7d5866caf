/** The identifiers a manifest line may name a work by (SPEC §9); each normalized, null when absent. */
export interface WorkIds {
  /** lowercase, without `doi:` or a doi.org prefix */
  doi: string | null;
  /** `W` and digits */
  openalex: string | null;
  /** new style `2101.00001`, old style `hep-th/9901001`, with any version suffix */
  arxiv: string | null;
  /** `PMC` and digits */
  pmcid: string | null;
}

const DOI = /^(?:doi:\s*|https?:\/\/(?:dx\.)?doi\.org\/)?(10\.\d{4,9}\/\S+)$/i;
const OPENALEX = /^(?:https?:\/\/openalex\.org\/)?(W\d+)$/i;
const ARXIV_NEW = /^(?:arxiv:)?(\d{4}\.\d{4,5}(?:v\d+)?)$/i;
const ARXIV_OLD = /^arxiv:([a-z-]+(?:\.[a-z]{2})?\/\d{7}(?:v\d+)?)$/i;
/** arXiv's own DOIs (10.48550/arXiv.2101.00001) name the same paper */
const ARXIV_DOI = /^10\.48550\/arxiv\.(.+)$/i;
const PMCID = /^(PMC\d+)$/i;

export function noIds(): WorkIds {
  return { doi: null, openalex: null, arxiv: null, pmcid: null };
}

export function hasIds(ids: WorkIds | null): ids is WorkIds {
  return ids !== null && (ids.doi !== null || ids.openalex !== null || ids.arxiv !== null || ids.pmcid !== null);
}

export function parseDoi(text: string): string | null {
  const m = DOI.exec(text.trim());
  return m ? m[1]!.toLowerCase() : null;
}

export function parseOpenAlex(text: string): string | null {
  const m = OPENALEX.exec(text.trim());
  return m ? m[1]!.toUpperCase() : null;
}

export function parseArxiv(text: string): string | null {
  const t = text.trim();
  const m = ARXIV_NEW.exec(t) ?? ARXIV_OLD.exec(t) ?? (/^[a-z-]+(?:\.[a-z]{2})?\/\d{7}(?:v\d+)?$/i.test(t) ? [t, t] : null);
  return m ? m[1]!.replace(/^arxiv:/i, '') : null;
}

export function parsePmcid(text: string): string | null {
  const m = PMCID.exec(text.trim());
  return m ? m[1]!.toUpperCase() : null;
}

/**
 * A bare manifest line that is an identifier, with the item id it gives; null for anything else.
 * `2101.00001` is an arXiv id; old-style arXiv ids need their `arXiv:` prefix on a bare line.
 */
export function bareIdentifier(text: string): { ids: WorkIds; id: string } | null {
  const ids = noIds();
  if ((ids.doi = parseDoi(text))) return { ids: withArxivDoi(ids), id: ids.doi };
  if ((ids.openalex = parseOpenAlex(text))) return { ids, id: ids.openalex };
  const arxiv = ARXIV_NEW.exec(text) ?? ARXIV_OLD.exec(text);
  if (arxiv) {
    ids.arxiv = arxiv[1]!;
    return { ids, id: `arXiv:${ids.arxiv}` };
  }
  if ((ids.pmcid = parsePmcid(text))) return { ids, id: ids.pmcid };
  return null;
}

/** A DOI of arXiv's own names its arXiv id too, so the direct resolver can place it. */
export function withArxivDoi(ids: WorkIds): WorkIds {
  const m = ids.doi ? ARXIV_DOI.exec(ids.doi) : null;
  if (m && ids.arxiv === null) ids.arxiv = m[1]!;
  return ids;
}

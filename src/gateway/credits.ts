/**
 * Tavily's published credit costs, used when a response carries no `usage` figure (the
 * gateway always asks for it, so this is the fallback).
 */
export type Endpoint = 'search' | 'extract' | 'crawl' | 'map' | 'research' | 'research.get';

type Json = Record<string, unknown>;

const count = (v: unknown) => (Array.isArray(v) ? v.length : 0);

export function estimateCredits(endpoint: Endpoint, request: Json, response: Json): number {
  switch (endpoint) {
    case 'search':
      return request.search_depth === 'advanced' ? 2 : 1;
    case 'extract': {
      const ok = count(response.results);
      return Math.ceil(ok / 5) * (request.extract_depth === 'advanced' ? 2 : 1);
    }
    case 'map':
      return Math.ceil(count(response.results) / 10) * (request.instructions ? 2 : 1);
    case 'crawl': {
      const pages = count(response.results);
      return Math.ceil(pages / 10) * (request.instructions ? 2 : 1) + Math.ceil(pages / 5) * (request.extract_depth === 'advanced' ? 2 : 1);
    }
    case 'research':
    case 'research.get':
      // The published range starts at 4 (mini) and 15 (pro) credits a request.
      return request.model === 'pro' ? 15 : 4;
  }
}

/** The response's own figure, when Tavily gave a number (checked by chargeableCredits). */
export function reportedCredits(response: Json): unknown {
  const usage = response.usage as { credits?: unknown } | undefined;
  return typeof usage === 'object' && usage !== null ? usage.credits : undefined;
}

/** Tavily's crawl and map process 50 pages when the request sets no `limit`. */
const DEFAULT_PAGE_LIMIT = 50;

/**
 * The most a request can cost at Tavily's published prices: a figure above it (or below 0, or
 * not a finite number) is not believed. Search 2 (advanced); extract 2 per 5 URLs; map 2 per
 * 10 pages and crawl that plus extract's price for the pages, up to the request's `limit`;
 * research up to 250 (pro).
 */
export function maxCredits(endpoint: Endpoint, request: Json): number {
  const pages = typeof request.limit === 'number' && Number.isFinite(request.limit) && request.limit > 0 ? Math.ceil(request.limit) : DEFAULT_PAGE_LIMIT;
  switch (endpoint) {
    case 'search':
      return 2;
    case 'extract': {
      const urls = typeof request.urls === 'string' ? 1 : count(request.urls);
      return Math.ceil(urls / 5) * 2;
    }
    case 'map':
      return Math.ceil(pages / 10) * 2;
    case 'crawl':
      return Math.ceil(pages / 10) * 2 + Math.ceil(pages / 5) * 2;
    case 'research':
    case 'research.get':
      return 250;
  }
}

/**
 * The credits to count for an answer. `full`: Tavily's `usage.credits`, or else the published
 * cost; `reported`: only a figure Tavily reports; `none`: nothing (a research poll after the
 * one that billed it). A reported figure outside 0…maxCredits is not trusted: the published
 * cost is counted instead (nothing, for `reported`) and `rejected` holds the figure, for the log.
 */
export function chargeableCredits(
  endpoint: Endpoint,
  request: Json,
  response: Json,
  billing: 'full' | 'reported' | 'none',
): { credits: number; rejected?: unknown } {
  if (billing === 'none') return { credits: 0 };
  const reported = reportedCredits(response);
  if (reported === undefined || reported === null) return { credits: billing === 'full' ? estimateCredits(endpoint, request, response) : 0 };
  if (typeof reported === 'number' && Number.isFinite(reported) && reported >= 0 && reported <= maxCredits(endpoint, request)) {
    return { credits: reported };
  }
  return { credits: billing === 'full' ? estimateCredits(endpoint, request, response) : 0, rejected: reported };
}

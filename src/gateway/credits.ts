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

/** The response's own figure, when Tavily gave one. */
export function reportedCredits(response: Json): number | null {
  const usage = response.usage as { credits?: unknown } | undefined;
  return typeof usage?.credits === 'number' && Number.isFinite(usage.credits) ? usage.credits : null;
}

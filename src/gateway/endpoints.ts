import { type Static, type TObject, Type } from '@sinclair/typebox';
import { ENDPOINT_NAMES, type EndpointName } from './endpoint-names.js';

export { ENDPOINT_NAMES, type EndpointName };

type Json = Record<string, unknown>;

/** Fields every request body may carry besides its own. */
const common = {
  api_key: Type.Optional(Type.String({ description: 'older clients send the token here; the header is preferred' })),
  include_usage: Type.Optional(Type.Boolean()),
};

/** Request bodies: the fields the gateway relies on are checked; the rest passes to Tavily as sent. */
export const SearchBody = Type.Object({ query: Type.String({ minLength: 1 }), ...common }, { additionalProperties: true });
export const ExtractBody = Type.Object(
  { urls: Type.Union([Type.String(), Type.Array(Type.String(), { minItems: 1 })]), ...common },
  { additionalProperties: true },
);
export const CrawlBody = Type.Object({ url: Type.String({ minLength: 1 }), ...common }, { additionalProperties: true });
export const MapBody = Type.Object({ url: Type.String({ minLength: 1 }), ...common }, { additionalProperties: true });
export const ResearchBody = Type.Object(
  { input: Type.String({ minLength: 1 }), stream: Type.Optional(Type.Boolean()), ...common },
  { additionalProperties: true },
);
/** Feedback on a request (`@tavily/core`'s feedback()): every field optional. */
export const FeedbackBody = Type.Object(
  {
    request_id: Type.Optional(Type.String({ maxLength: 200, description: 'the request the feedback is about: sent with the key that served it' })),
    session_id: Type.Optional(Type.String({ maxLength: 500 })),
    ...common,
  },
  { additionalProperties: true },
);
export type SearchBody = Static<typeof SearchBody>;

/** The MCP tools, as Tavily's own MCP server names them. */
export type McpToolName = 'tavily_search' | 'tavily_extract' | 'tavily_crawl' | 'tavily_map' | 'tavily_research';

/** Tavily's `/usage` counters, one per kind of work. */
export type UsageCounter = 'search_usage' | 'extract_usage' | 'crawl_usage' | 'map_usage' | 'research_usage';

export interface EndpointSpec {
  readonly name: EndpointName;
  readonly method: 'GET' | 'POST';
  /** The gateway's route, which is Tavily's path. */
  readonly route: string;
  /** POST: the body's schema. */
  readonly body: TObject | null;
  /** The deadline for Tavily's whole answer. */
  readonly timeoutMs: number;
  /**
   * How an answer is billed: `full` counts Tavily's usage figure or else the published cost;
   * `on-poll` nothing now (research is billed once, on the first poll that finds it done);
   * `free` nothing.
   */
  readonly billing: 'full' | 'on-poll' | 'free';
  /** The `/usage` counter this endpoint's credits add to (none for a free endpoint). */
  readonly usageCounter: UsageCounter | null;
  /** The MCP tool that calls this endpoint (src/mcp/tools.ts describes it), if any. */
  readonly mcpTool: McpToolName | null;
  /** Tavily's published cost, used when an answer reports none. */
  estimate(request: Json, response: Json): number;
  /** The most one request can cost at published prices: a reported figure above it is not believed. */
  max(request: Json): number;
  readonly summary: string;
}

const count = (v: unknown) => (Array.isArray(v) ? v.length : 0);
/** Tavily's crawl and map process 50 pages when the request sets no `limit`. */
const DEFAULT_PAGE_LIMIT = 50;
const pageLimit = (request: Json) =>
  typeof request.limit === 'number' && Number.isFinite(request.limit) && request.limit > 0 ? Math.ceil(request.limit) : DEFAULT_PAGE_LIMIT;
/** The published range of a research task starts at 4 (mini) and 15 (pro) credits, and goes up to 250. */
const researchCost = (request: Json) => (request.model === 'pro' ? 15 : 4);

/**
 * Every Tavily endpoint the gateway serves, once: its route, body, deadline, prices and
 * counter. The routes, the credit figures, the admin log filter and the `/usage` counts derive
 * from it; adding an endpoint is an entry here (and its tests).
 */
export const ENDPOINTS: { readonly [N in EndpointName]: EndpointSpec & { readonly name: N } } = {
  search: {
    name: 'search',
    method: 'POST',
    route: '/search',
    body: SearchBody,
    timeoutMs: 60_000,
    billing: 'full',
    usageCounter: 'search_usage',
    mcpTool: 'tavily_search',
    // basic, fast, ultra-fast 1; advanced 2.
    estimate: (req) => (req.search_depth === 'advanced' ? 2 : 1),
    max: () => 2,
    summary: 'Tavily /search through the pool',
  },
  extract: {
    name: 'extract',
    method: 'POST',
    route: '/extract',
    body: ExtractBody,
    timeoutMs: 60_000,
    billing: 'full',
    usageCounter: 'extract_usage',
    mcpTool: 'tavily_extract',
    // 1 per 5 successful URLs (basic), 2 per 5 (advanced); failed URLs are free.
    estimate: (req, res) => Math.ceil(count(res.results) / 5) * (req.extract_depth === 'advanced' ? 2 : 1),
    max: (req) => Math.ceil((typeof req.urls === 'string' ? 1 : count(req.urls)) / 5) * 2,
    summary: 'Tavily /extract through the pool',
  },
  crawl: {
    name: 'crawl',
    method: 'POST',
    route: '/crawl',
    body: CrawlBody,
    timeoutMs: 150_000,
    billing: 'full',
    usageCounter: 'crawl_usage',
    mcpTool: 'tavily_crawl',
    // The map's cost (1 per 10 pages, 2 with instructions) plus extract's for the pages.
    estimate: (req, res) => {
      const pages = count(res.results);
      return Math.ceil(pages / 10) * (req.instructions ? 2 : 1) + Math.ceil(pages / 5) * (req.extract_depth === 'advanced' ? 2 : 1);
    },
    max: (req) => Math.ceil(pageLimit(req) / 10) * 2 + Math.ceil(pageLimit(req) / 5) * 2,
    summary: 'Tavily /crawl through the pool',
  },
  map: {
    name: 'map',
    method: 'POST',
    route: '/map',
    body: MapBody,
    timeoutMs: 150_000,
    billing: 'full',
    usageCounter: 'map_usage',
    mcpTool: 'tavily_map',
    // 1 per 10 successful pages, 2 per 10 with instructions.
    estimate: (req, res) => Math.ceil(count(res.results) / 10) * (req.instructions ? 2 : 1),
    max: (req) => Math.ceil(pageLimit(req) / 10) * 2,
    summary: 'Tavily /map through the pool',
  },
  research: {
    name: 'research',
    method: 'POST',
    route: '/research',
    body: ResearchBody,
    timeoutMs: 60_000,
    billing: 'on-poll',
    usageCounter: 'research_usage',
    mcpTool: 'tavily_research',
    estimate: researchCost,
    max: () => 250,
    summary: 'Tavily /research through the pool (with "stream": true, the event stream passes through)',
  },
  'research.get': {
    name: 'research.get',
    method: 'GET',
    route: '/research/:request_id',
    body: null,
    timeoutMs: 60_000,
    billing: 'full',
    usageCounter: 'research_usage',
    // Polled by the research tool itself.
    mcpTool: null,
    estimate: researchCost,
    max: () => 250,
    summary: 'Poll a research task, through the key that created it',
  },
  feedback: {
    name: 'feedback',
    method: 'POST',
    route: '/feedback',
    body: FeedbackBody,
    timeoutMs: 30_000,
    billing: 'free',
    usageCounter: null,
    mcpTool: null,
    estimate: () => 0,
    max: () => 0,
    summary: 'Feedback on a request, sent with the key that served it (free)',
  },
};

/** The `/usage` counters of a token, from its credits by endpoint. */
export function usageCounters(byEndpoint: Readonly<Record<string, number>>): Record<UsageCounter, number> {
  const out: Record<UsageCounter, number> = { search_usage: 0, extract_usage: 0, crawl_usage: 0, map_usage: 0, research_usage: 0 };
  for (const name of ENDPOINT_NAMES) {
    const counter = ENDPOINTS[name].usageCounter;
    if (counter) out[counter] += byEndpoint[name] ?? 0;
  }
  return out;
}

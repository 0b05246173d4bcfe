import { type Static, type TObject, Type } from '@sinclair/typebox';
import { ENDPOINT_NAMES, type EndpointName } from '../schemas/endpoint-names.js';
import { type Fields, choice, count, flag, text } from './fields.js';

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
  /**
   * Whether an identical request's answer may be reused (the answer cache, in-flight dedup):
   * search, extract, crawl and map answer the same request the same way for a while; research
   * tasks, their polls and feedback never are.
   */
  readonly cacheable: boolean;
  /** The `/usage` counter this endpoint's credits add to (none for a free endpoint). */
  readonly usageCounter: UsageCounter | null;
  /** The MCP tool that calls this endpoint (src/mcp/tools.ts describes it), if any. */
  readonly mcpTool: McpToolName | null;
  /**
   * The fields its prices and the token caps read, made canonical before any check (fields.ts):
   * what is checked is what is forwarded.
   */
  readonly fields: Fields;
  /** Tavily's published cost of an answer, used when the answer reports none (the request in canonical form). */
  estimate(request: Json, response: Json): number;
  /**
   * The most one request can cost at published prices, from its canonical form: what a token's
   * budget reserves before the call is forwarded, what `caps.max_credits` is checked against,
   * and the ceiling of a figure Tavily reports (one above it is not believed).
   */
  max(request: Json): number;
  /**
   * Who holds the reservation for this request's credits: the call itself, or (a research poll)
   * the task it polls, whose creation reserved what finishing it can cost.
   */
  readonly reservedBy: 'call' | 'task';
  /** How many results the request asks for (Tavily's default when it says none), for `caps.max_results`. */
  asks?(request: Json): { field: string; count: number };
  readonly summary: string;
}

const length = (v: unknown) => (Array.isArray(v) ? v.length : 0);
/** Tavily's crawl and map process 50 pages when the request sets no `limit`. */
export const DEFAULT_PAGE_LIMIT = 50;
/** Tavily's search returns 5 results when the request sets no `max_results`. */
export const DEFAULT_MAX_RESULTS = 5;
const pageLimit = (request: Json) => (typeof request.limit === 'number' ? request.limit : DEFAULT_PAGE_LIMIT);

/** Search depths billed 1 credit; `advanced`, and any depth not known here, is priced at 2. */
export const BASIC_SEARCH_DEPTHS: readonly string[] = ['basic', 'fast', 'ultra-fast'];
/**
 * Whether a search may be billed as advanced: it asks for it (or a depth not known here), or it
 * sets `auto_parameters` without a depth, which lets Tavily choose advanced.
 */
export function mayBeAdvancedSearch(request: Json): boolean {
  const depth = request.search_depth;
  if (depth === undefined || depth === null) return request.auto_parameters === true;
  return !BASIC_SEARCH_DEPTHS.includes(depth as string);
}
/** Whether an extract (or a crawl's extraction) may be billed at the advanced rate. */
export function mayBeAdvancedExtract(request: Json): boolean {
  const depth = request.extract_depth;
  return depth !== undefined && depth !== null && depth !== 'basic';
}
/** A research model the task may run with: `auto`, and a model not known here, count as pro. */
export const researchModel = (request: Json): 'mini' | 'pro' => (request.model === 'mini' ? 'mini' : 'pro');
/** The published range of a research task: mini 4–110 credits, pro 15–250. */
const RESEARCH_COST = { mini: { least: 4, most: 110 }, pro: { least: 15, most: 250 } } as const;
const withInstructions = (request: Json) => typeof request.instructions === 'string' && request.instructions !== '';
const mapCost = (request: Json, pages: number) => Math.ceil(pages / 10) * (withInstructions(request) ? 2 : 1);
const extractCost = (request: Json, pages: number) => Math.ceil(pages / 5) * (mayBeAdvancedExtract(request) ? 2 : 1);

const MAP_FIELDS: Fields = { limit: count(1), max_depth: count(1), max_breadth: count(1), instructions: text() };
const CRAWL_FIELDS: Fields = { ...MAP_FIELDS, extract_depth: choice('basic', 'advanced') };

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
    cacheable: true,
    usageCounter: 'search_usage',
    mcpTool: 'tavily_search',
    fields: { search_depth: choice('basic', 'advanced', 'fast', 'ultra-fast'), max_results: count(0), auto_parameters: flag() },
    // basic, fast, ultra-fast 1; advanced 2 (auto_parameters says in its answer what it chose).
    estimate: (req, res) => {
      const chosen = (res.auto_parameters as { search_depth?: unknown } | undefined)?.search_depth;
      return mayBeAdvancedSearch(typeof chosen === 'string' ? { search_depth: chosen } : req) ? 2 : 1;
    },
    max: (req) => (mayBeAdvancedSearch(req) ? 2 : 1),
    reservedBy: 'call',
    asks: (req) => ({ field: 'max_results', count: typeof req.max_results === 'number' ? req.max_results : DEFAULT_MAX_RESULTS }),
    summary: 'Tavily /search through the pool',
  },
  extract: {
    name: 'extract',
    method: 'POST',
    route: '/extract',
    body: ExtractBody,
    timeoutMs: 60_000,
    billing: 'full',
    cacheable: true,
    usageCounter: 'extract_usage',
    mcpTool: 'tavily_extract',
    fields: { extract_depth: choice('basic', 'advanced') },
    // 1 per 5 successful URLs (basic), 2 per 5 (advanced); failed URLs are free.
    estimate: (req, res) => extractCost(req, length(res.results)),
    max: (req) => extractCost(req, typeof req.urls === 'string' ? 1 : length(req.urls)),
    reservedBy: 'call',
    summary: 'Tavily /extract through the pool',
  },
  crawl: {
    name: 'crawl',
    method: 'POST',
    route: '/crawl',
    body: CrawlBody,
    timeoutMs: 150_000,
    billing: 'full',
    cacheable: true,
    usageCounter: 'crawl_usage',
    mcpTool: 'tavily_crawl',
    fields: CRAWL_FIELDS,
    // The map's cost (1 per 10 pages, 2 with instructions) plus extract's for the pages.
    estimate: (req, res) => mapCost(req, length(res.results)) + extractCost(req, length(res.results)),
    max: (req) => mapCost(req, pageLimit(req)) + extractCost(req, pageLimit(req)),
    reservedBy: 'call',
    asks: (req) => ({ field: 'limit', count: pageLimit(req) }),
    summary: 'Tavily /crawl through the pool',
  },
  map: {
    name: 'map',
    method: 'POST',
    route: '/map',
    body: MapBody,
    timeoutMs: 150_000,
    billing: 'full',
    cacheable: true,
    usageCounter: 'map_usage',
    mcpTool: 'tavily_map',
    fields: MAP_FIELDS,
    // 1 per 10 successful pages, 2 per 10 with instructions.
    estimate: (req, res) => mapCost(req, length(res.results)),
    max: (req) => mapCost(req, pageLimit(req)),
    reservedBy: 'call',
    asks: (req) => ({ field: 'limit', count: pageLimit(req) }),
    summary: 'Tavily /map through the pool',
  },
  research: {
    name: 'research',
    method: 'POST',
    route: '/research',
    body: ResearchBody,
    timeoutMs: 60_000,
    billing: 'on-poll',
    cacheable: false,
    usageCounter: 'research_usage',
    mcpTool: 'tavily_research',
    fields: { model: choice('mini', 'pro', 'auto') },
    // Billed when a poll finds it done (its answer's usage figure); a stream, the least it can
    // cost (pro's least only when pro was asked for: auto may choose mini).
    estimate: (req) => (req.model === 'pro' ? RESEARCH_COST.pro.least : RESEARCH_COST.mini.least),
    // Reserved from creation until a poll bills it: the most its model can cost.
    max: (req) => RESEARCH_COST[researchModel(req)].most,
    reservedBy: 'call',
    summary: 'Tavily /research through the pool (with "stream": true, the event stream passes through)',
  },
  'research.get': {
    name: 'research.get',
    method: 'GET',
    route: '/research/:request_id',
    body: null,
    timeoutMs: 60_000,
    billing: 'full',
    cacheable: false,
    usageCounter: 'research_usage',
    // Polled by the research tool itself.
    mcpTool: null,
    fields: {},
    // A poll's request says nothing of the task's model: the least and most of any research task.
    estimate: () => RESEARCH_COST.mini.least,
    max: () => RESEARCH_COST.pro.most,
    reservedBy: 'task',
    summary: 'Poll a research task, through the key that created it',
  },
  feedback: {
    name: 'feedback',
    method: 'POST',
    route: '/feedback',
    body: FeedbackBody,
    timeoutMs: 30_000,
    billing: 'free',
    cacheable: false,
    usageCounter: null,
    mcpTool: null,
    fields: {},
    estimate: () => 0,
    max: () => 0,
    reservedBy: 'call',
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

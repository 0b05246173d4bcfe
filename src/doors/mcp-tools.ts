import { ENDPOINTS, ENDPOINT_NAMES, type EndpointName, type McpToolName } from '../gateway/endpoints.js';

export type { McpToolName };

/**
 * The MCP tools: those of Tavily's own MCP server (`tavily-mcp`), with its names, arguments,
 * types, enums and defaults, so that an agent that used it finds the same interface here.
 * The descriptions are ours. Each tool calls one endpoint of the gateway (research also polls
 * the task it created) and answers with text a model reads well, beside the raw JSON.
 */

type Json = Record<string, unknown>;

/** A JSON Schema property of a tool argument. */
interface Arg {
  type: 'string' | 'number' | 'integer' | 'boolean' | 'array';
  description: string;
  enum?: readonly string[];
  default?: unknown;
  minimum?: number;
  maximum?: number;
  items?: { type: 'string' };
}

export interface ToolSpec {
  readonly name: McpToolName;
  readonly title: string;
  readonly description: string;
  /** Arguments not listed are ignored (not sent to Tavily), as Tavily's own server does. */
  readonly inputSchema: { type: 'object'; properties: Record<string, Arg>; required: string[] };
  /** Tavily's request body from the tool's arguments (defaults applied). */
  request(args: Json): Json;
  /** The answer as text for the model. */
  format(data: Json): string;
}

/** The tools, in the order of the endpoint table, each with the endpoint it calls. */
export const MCP_TOOL_ENDPOINTS: ReadonlyMap<McpToolName, EndpointName> = new Map(
  ENDPOINT_NAMES.flatMap((e): [McpToolName, EndpointName][] => {
    const tool = ENDPOINTS[e].mcpTool;
    return tool ? [[tool, e]] : [];
  }),
);

const str = (description: string, extra: Partial<Arg> = {}): Arg => ({ type: 'string', description, ...extra });
const bool = (description: string, def?: boolean): Arg => ({ type: 'boolean', description, ...(def === undefined ? {} : { default: def }) });
const list = (description: string): Arg => ({ type: 'array', items: { type: 'string' }, description, default: [] });
const int = (description: string, def: number): Arg => ({ type: 'integer', description, default: def, minimum: 1 });

/**
 * Arguments as Tavily takes them: empty strings and lists, and nulls, are left out (Tavily's
 * server does the same), and a date range wins over a time range.
 */
function cleaned(args: Json, fields: readonly string[]): Json {
  const out: Json = {};
  for (const f of fields) {
    const v = args[f];
    if (v === undefined || v === null || v === '' || (Array.isArray(v) && v.length === 0)) continue;
    out[f] = v;
  }
  return out;
}

const site = {
  url: str('The address the walk starts from'),
  max_depth: int('How many links away from the start the walk may go', 1),
  max_breadth: int('How many links it follows from each page', 20),
  limit: int('How many pages it handles in all before it stops', 50),
  instructions: str('What to look for, in plain words (pages that match are returned)'),
  select_paths: list('Regular expressions: only paths that match (e.g. /docs/.*)'),
  select_domains: list('Regular expressions: only domains that match (e.g. ^docs\\.example\\.com$)'),
  allow_external: bool('Whether links to other sites are returned too', true),
};
const MAP_FIELDS = ['url', 'max_depth', 'max_breadth', 'limit', 'instructions', 'select_paths', 'select_domains', 'allow_external'] as const;

type Result = { title?: unknown; url?: unknown; content?: unknown; raw_content?: unknown; favicon?: unknown };
const text = (v: unknown) => (typeof v === 'string' && v.trim() !== '' ? v : null);
const items = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

function formatResults(data: Json): string {
  const out: string[] = [];
  if (text(data.answer)) out.push(`Answer: ${data.answer as string}`);
  out.push('Detailed Results:');
  for (const r of items(data.results) as Result[]) {
    if (text(r.title)) out.push(`\nTitle: ${r.title as string}`);
    else out.push('');
    out.push(`URL: ${String(r.url ?? '')}`);
    const content = text(r.content) ?? text(r.raw_content);
    if (content) out.push(`Content: ${content}`);
    if (text(r.favicon)) out.push(`Favicon: ${r.favicon as string}`);
  }
  const images = items(data.images);
  if (images.length > 0) {
    out.push('\nImages:');
    images.forEach((img, i) => {
      if (typeof img === 'string') out.push(`\n[${i + 1}] URL: ${img}`);
      else if (img && typeof img === 'object') {
        const { url, description } = img as { url?: unknown; description?: unknown };
        out.push(`\n[${i + 1}] URL: ${String(url ?? '')}`);
        if (text(description)) out.push(`   Description: ${description as string}`);
      }
    });
  }
  const failed = items(data.failed_results);
  if (failed.length > 0) {
    out.push('\nFailed:');
    for (const f of failed) {
      const { url, error } = (f ?? {}) as { url?: unknown; error?: unknown };
      out.push(`URL: ${String(url ?? f)}${text(error) ? ` (${error as string})` : ''}`);
    }
  }
  return out.join('\n');
}

export const MCP_TOOLS: { readonly [N in McpToolName]: ToolSpec & { readonly name: N } } = {
  tavily_search: {
    name: 'tavily_search',
    title: 'Web search',
    description:
      'Searches the web and returns the most relevant pages with a snippet of each (and, if asked, an answer). ' +
      'Use it for anything current or beyond what you know: news, facts, prices, documentation.',
    inputSchema: {
      type: 'object',
      properties: {
        query: str('What to search for'),
        search_depth: str("How hard to search: 'basic' for most questions, 'advanced' for thorough results (2 credits), 'fast' and 'ultra-fast' when speed matters most", { enum: ['basic', 'advanced', 'fast', 'ultra-fast'], default: 'basic' }),
        topic: str('The kind of search', { enum: ['general'], default: 'general' }),
        time_range: str('Only results from the last day, week, month or year', { enum: ['day', 'week', 'month', 'year'] }),
        start_date: str('Only results published on or after this date (YYYY-MM-DD)', { default: '' }),
        end_date: str('Only results published on or before this date (YYYY-MM-DD)', { default: '' }),
        max_results: { type: 'number', description: 'How many results to return', default: 5, minimum: 5, maximum: 20 },
        include_images: bool('Also return images about the query', false),
        include_image_descriptions: bool('Also return images about the query, each with a description', false),
        include_raw_content: bool('Also return the full text of each page', false),
        include_domains: list('Only search these sites (domains), e.g. when asked to search a particular site'),
        exclude_domains: list('Leave these sites (domains) out'),
        country: str("Prefer results from this country, given by its full English name (e.g. 'Germany')", { default: '' }),
        include_favicon: bool('Return the site icon of each result', false),
        exact_match: bool('Only results that contain the quoted phrase(s) of the query exactly'),
      },
      required: ['query'],
    },
    request(args) {
      const body = cleaned(args, ['query', 'search_depth', 'topic', 'time_range', 'start_date', 'end_date', 'max_results', 'include_images', 'include_image_descriptions', 'include_raw_content', 'include_domains', 'exclude_domains', 'country', 'include_favicon', 'exact_match']);
      // A country applies to general searches only; dates make a time range moot.
      if (body.country) body.topic = 'general';
      if ((body.start_date || body.end_date) && body.time_range) delete body.time_range;
      return body;
    },
    format: formatResults,
  },
  tavily_extract: {
    name: 'tavily_extract',
    title: 'Read web pages',
    description: 'Fetches web pages and returns their content as markdown or plain text. Use it to read pages whose address you already have.',
    inputSchema: {
      type: 'object',
      properties: {
        urls: { type: 'array', items: { type: 'string' }, description: 'The addresses of the pages to read (up to 20)' },
        extract_depth: str("'advanced' for pages that are hard to read (LinkedIn, tables, embedded content)", { enum: ['basic', 'advanced'], default: 'basic' }),
        include_images: bool('Also return the images on the pages', false),
        format: str('The format of the content', { enum: ['markdown', 'text'], default: 'markdown' }),
        include_favicon: bool('Return the site icon of each page', false),
        query: str('Order the content of each page by how well it answers this'),
      },
      required: ['urls'],
    },
    request: (args) => cleaned(args, ['urls', 'extract_depth', 'include_images', 'format', 'include_favicon', 'query']),
    format: formatResults,
  },
  tavily_crawl: {
    name: 'tavily_crawl',
    title: 'Crawl a website',
    description: 'Walks a website from a starting address, following its links, and returns the content of the pages it finds. Use it to read a whole site or section (documentation, say).',
    inputSchema: {
      type: 'object',
      properties: {
        ...site,
        extract_depth: str("'advanced' for pages that are hard to read (tables, embedded content)", { enum: ['basic', 'advanced'], default: 'basic' }),
        format: str('The format of the content', { enum: ['markdown', 'text'], default: 'markdown' }),
        include_favicon: bool('Return the site icon of each page', false),
      },
      required: ['url'],
    },
    request: (args) => cleaned(args, [...MAP_FIELDS, 'extract_depth', 'format', 'include_favicon']),
    format(data) {
      const out = ['Crawl Results:', `Base URL: ${String(data.base_url ?? '')}`, '\nCrawled Pages:'];
      (items(data.results) as Result[]).forEach((page, i) => {
        out.push(`\n[${i + 1}] URL: ${String(page.url ?? '')}`);
        const content = text(page.raw_content);
        if (content) out.push(`Content: ${content.length > 200 ? `${content.slice(0, 200)}...` : content}`);
        if (text(page.favicon)) out.push(`Favicon: ${page.favicon as string}`);
      });
      return out.join('\n');
    },
  },
  tavily_map: {
    name: 'tavily_map',
    title: 'Map a website',
    description: "Walks a website from a starting address and returns the addresses of the pages it finds, without their content. Use it to learn a site's structure.",
    inputSchema: { type: 'object', properties: site, required: ['url'] },
    request: (args) => cleaned(args, MAP_FIELDS),
    format(data) {
      const out = ['Site Map Results:', `Base URL: ${String(data.base_url ?? '')}`, '\nMapped Pages:'];
      items(data.results).forEach((page, i) => out.push(`\n[${i + 1}] URL: ${typeof page === 'string' ? page : String((page as Result)?.url ?? '')}`));
      return out.join('\n');
    },
  },
  tavily_research: {
    name: 'tavily_research',
    title: 'Research a question',
    description:
      'Researches a question or task in depth across many sources and returns a written report. It takes from ' +
      'about a minute to several; progress is reported while it runs. Use it for broad questions a few searches would not settle.',
    inputSchema: {
      type: 'object',
      properties: {
        input: str('The question or task, described in full'),
        model: str("How deep: 'mini' for a narrow question, 'pro' for a broad one with many parts, 'auto' to let it choose", { enum: ['mini', 'pro', 'auto'], default: 'auto' }),
      },
      required: ['input'],
    },
    request: (args) => cleaned(args, ['input', 'model']),
    format(data) {
      if (data.status === 'failed') return `Research Error: ${text(data.error) ?? 'the research task failed'}`;
      return text(data.content) ?? (data.content && typeof data.content === 'object' ? JSON.stringify(data.content, null, 2) : 'No research results available');
    },
  },
};

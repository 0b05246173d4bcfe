import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { AjvJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/ajv';
import { CallToolRequestSchema, type CallToolResult, ErrorCode, ListToolsRequestSchema, McpError, type Tool } from '@modelcontextprotocol/sdk/types.js';
import { Ajv, type ValidateFunction } from 'ajv';
import type { Logger } from 'pino';
import type { GatewayCore, Outcome } from '../gateway/core.js';
import { GatewayError } from '../gateway/core.js';
import { ENDPOINTS } from '../gateway/endpoints.js';
import { endpointAllowed } from '../gateway/scopes.js';
import type { TokenState } from '../gateway/tokens.js';
import { upstreamMessage } from '../tavily/client.js';
import { MCP_TOOLS, MCP_TOOL_ENDPOINTS, type McpToolName, type ToolSpec } from './mcp-tools.js';

type Json = Record<string, unknown>;

export interface McpDeps {
  gateway: GatewayCore;
  log: Logger;
  version: string;
  /** The research tool's first wait before it polls (2 s), growing 1.5× a poll up to 10 s. */
  researchPollMs?: number;
}

/** How long the research tool waits for a task: 5 minutes for 'mini', 15 for the others (as Tavily's server). */
const RESEARCH_LIMIT_MS = { mini: 5 * 60_000, other: 15 * 60_000 };
const RESEARCH_POLL_MAX_MS = 10_000;

/**
 * A tool call's request is checked as the REST door checks the same endpoint's body (what
 * Tavily's API takes), not against the tool's schema: its bounds and enums guide the model
 * (Tavily's own MCP server does not enforce them either), and Tavily judges the rest. Compiled once.
 */
const ajv = new Ajv({ allErrors: false, strict: false, coerceTypes: false });
const validators = new Map<McpToolName, ValidateFunction>(
  [...MCP_TOOL_ENDPOINTS].map(([name, endpoint]) => [name, ajv.compile(ENDPOINTS[endpoint].body!)]),
);

/** The tool's defaults, for the arguments not given. */
function withDefaults(tool: ToolSpec, given: Json): Json {
  const args: Json = { ...given };
  for (const [k, arg] of Object.entries(tool.inputSchema.properties)) if (args[k] === undefined && arg.default !== undefined) args[k] = structuredClone(arg.default);
  return args;
}

const TOOLS: Tool[] = [...MCP_TOOL_ENDPOINTS.keys()].map((name) => {
  const t: ToolSpec = MCP_TOOLS[name];
  return {
    name,
    title: t.title,
    description: t.description,
    inputSchema: t.inputSchema as Tool['inputSchema'],
    annotations: { title: t.title, readOnlyHint: true, openWorldHint: true },
  };
});

/**
 * The SDK's server builds a JSON Schema validator (a new Ajv) for every instance unless given
 * one; a server per request made that 14% of an MCP call's CPU. One is shared.
 */
const schemaValidator = new AjvJsonSchemaValidator();

const failure = (message: string): CallToolResult => ({ content: [{ type: 'text', text: message }], isError: true });

/** What went wrong in a tool call, for the model to read. */
function explain(err: unknown): string {
  if (err instanceof GatewayError) return err.message;
  return 'tavily-pool: internal error; the server log has the details';
}

/** The text of a Tavily answer that is not a success (its own 4xx, passed on). */
function refusedAnswer(o: Extract<Outcome, { kind: 'answer' }>): string {
  return `Tavily API error (${o.status}): ${upstreamMessage(o.text)}`;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });

/**
 * An MCP server for one HTTP request of one client token: stateless, so that any instance
 * answers any message. Every tool call goes through the gateway core (admission, failover,
 * credits, the request log), and every failure inside a tool is a tool result with
 * `isError`, never a broken session.
 */
export function createMcpServer(deps: McpDeps, token: TokenState, remote: string | null = null, cache?: 'bypass'): Server {
  const server = new Server(
    { name: 'tavily-pool', version: deps.version, title: 'Tavily through tavily-pool' },
    {
      capabilities: { tools: { listChanged: false } },
      instructions: 'Tavily web search, page extraction, site crawling and mapping, and research, served through a pool of Tavily keys.',
      jsonSchemaValidator: schemaValidator,
    },
  );

  // A token limited to some endpoints sees only their tools (the others are refused if called anyway).
  server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: TOOLS.filter((t) => endpointAllowed(token.scopes, MCP_TOOL_ENDPOINTS.get(t.name as McpToolName)!)) }));

  server.setRequestHandler(CallToolRequestSchema, async (request, extra): Promise<CallToolResult> => {
    const name = request.params.name as McpToolName;
    const endpoint = MCP_TOOL_ENDPOINTS.get(name);
    if (!endpoint) throw new McpError(ErrorCode.InvalidParams, `Unknown tool: ${request.params.name}`);
    const tool = MCP_TOOLS[name];
    const args = withDefaults(tool, request.params.arguments ?? {});
    const body = tool.request(args);
    const valid = validators.get(name)!;
    if (!valid(body)) {
      const e = valid.errors![0]!;
      const missing = e.keyword === 'required' ? String((e.params as { missingProperty?: unknown }).missingProperty) : null;
      const where = missing ?? (e.instancePath.replace(/^\//, '').replace(/\//g, '.') || 'arguments');
      deps.gateway.answeredAtDoor(endpoint, 'mcp', 400, token);
      return failure(`Invalid arguments for ${name}: ${missing ? `${missing} is required` : `${where} ${e.message ?? 'is invalid'}`}`);
    }
    const headers = { 'x-client-source': 'MCP' };
    try {
      const o = await deps.gateway.call({ token, endpoint, body, headers, signal: extra.signal, via: 'mcp', remote, cache });
      if (o.kind === 'cancelled') return failure('cancelled');
      if (o.kind === 'stream') return failure('tavily-pool: an event stream cannot be a tool result');
      if (o.status >= 400 || !o.data) return failure(refusedAnswer(o));
      if (name !== 'tavily_research') return { content: [{ type: 'text', text: tool.format(o.data) }], structuredContent: o.data };
      return await research(o.data, String(args.model ?? 'auto'));
    } catch (err) {
      if (!(err instanceof GatewayError)) deps.log.error({ err, tool: name }, 'MCP tool call failed');
      return failure(explain(err));
    }

    /** Polls the task the tool created until it is done, reporting progress meanwhile. */
    async function research(created: Json, model: string): Promise<CallToolResult> {
      const requestId = typeof created.request_id === 'string' ? created.request_id : null;
      if (!requestId) return failure('Tavily did not return a request_id for the research task');
      const limitMs = model === 'mini' ? RESEARCH_LIMIT_MS.mini : RESEARCH_LIMIT_MS.other;
      const progressToken = request.params._meta?.progressToken;
      const started = Date.now();
      let wait = deps.researchPollMs ?? 2000;
      for (let poll = 1; Date.now() - started < limitMs; poll++) {
        await sleep(wait, extra.signal);
        if (extra.signal.aborted) return failure('cancelled');
        wait = Math.min(wait * 1.5, RESEARCH_POLL_MAX_MS);
        // Each poll is admitted again (a revoked or expired token stops here), without spending the RPM allowance.
        const o = await deps.gateway.call({ token, endpoint: 'research.get', requestId, body: {}, headers, signal: extra.signal, via: 'mcp', followUp: true, remote });
        if (o.kind !== 'answer') return failure('cancelled');
        if (o.status >= 400 || !o.data) return failure(refusedAnswer(o));
        const status = String(o.data.status ?? '');
        if (status === 'completed') return { content: [{ type: 'text', text: MCP_TOOLS.tavily_research.format(o.data) }], structuredContent: o.data };
        if (status === 'failed') return failure(MCP_TOOLS.tavily_research.format(o.data));
        if (progressToken !== undefined) {
          await extra.sendNotification({
            method: 'notifications/progress',
            params: { progressToken, progress: poll, message: `research ${status || 'running'} for ${Math.round((Date.now() - started) / 1000)} s (task ${requestId})` },
          });
        }
      }
      return failure(`The research task ${requestId} did not finish within ${limitMs / 60_000} minutes; it may still complete at Tavily.`);
    }
  });

  return server;
}

import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { bearerToken } from '../crypto.js';
import { clientWentAway } from '../http/errors.js';
import { CACHE_HEADER, bypassAsked } from '../gateway/cache.js';
import { GatewayError } from '../gateway/core.js';
import type { TokenState } from '../gateway/tokens.js';
import { createMcpServer } from './mcp-server.js';
import { type DoorDeps, clientToken } from './token.js';
import type { Logger } from 'pino';

export interface McpPluginOptions extends DoorDeps {
  log: Logger;
  /** Web origins allowed besides localhost (MCP_ALLOWED_ORIGINS). */
  allowedOrigins: readonly string[];
  version: string;
  /** The research tool's first wait before polling (tests shorten it). */
  researchPollMs?: number;
}

/** Whether a POSTed message (or batch) calls the research tool, the one that reports progress. */
function mayStream(body: unknown): boolean {
  const messages = Array.isArray(body) ? body : [body];
  return messages.some((m) => {
    const msg = m as { method?: unknown; params?: { name?: unknown } } | null;
    return msg?.method === 'tools/call' && msg.params?.name === 'tavily_research';
  });
}

/** A JSON-RPC error answer outside any session (the request's id, when it is known). */
function rpcError(reply: FastifyReply, status: number, code: number, message: string, id: string | number | null = null) {
  return reply.code(status).type('application/json').send({ jsonrpc: '2.0', error: { code, message }, id });
}

/** JSON-RPC's error codes used outside the SDK's server. */
const PARSE_ERROR = -32700;
const INVALID_PARAMS = -32602;

/**
 * A `tools/call` the SDK would refuse with a dump of its schema check: one without a tool name.
 * Answered here with a message a person reads.
 */
function namelessToolCall(body: unknown): { id: string | number | null } | null {
  if (!body || typeof body !== 'object' || Array.isArray(body)) return null;
  const m = body as { method?: unknown; id?: unknown; params?: { name?: unknown } | null };
  if (m.method !== 'tools/call' || typeof m.params?.name === 'string') return null;
  return { id: typeof m.id === 'string' || typeof m.id === 'number' ? m.id : null };
}

/** OAuth discovery documents an MCP client may probe after a 401 (RFC 9728, RFC 8414, OpenID). */
const DISCOVERY = ['oauth-protected-resource', 'oauth-authorization-server', 'openid-configuration'];
/** How long, and for how many addresses, the last refused token is remembered for the OAuth answers. */
const REFUSAL_MEMORY_MS = 10 * 60_000;
const REFUSAL_MEMORY_SIZE = 1000;

/**
 * The MCP door: `/mcp`, the Streamable HTTP transport, stateless (no session is kept, so any
 * instance behind a round-robin balancer answers any message). A client token comes as
 * `Authorization: Bearer`, or as `?tavilyApiKey=` for clients that cannot set headers (the
 * convention of Tavily's hosted MCP). Each POST gets a server of its own for that token.
 */
export async function mcp(app: FastifyInstance, opts: McpPluginOptions): Promise<void> {
  const log = opts.log.child({ component: 'mcp' });
  const deps = { gateway: opts.gateway, log, version: opts.version, researchPollMs: opts.researchPollMs };

  const allowed = new Set(opts.allowedOrigins);
  /**
   * A request from a web page carries an Origin. MCP clients (Claude, Cursor, VS Code, the
   * SDKs) send none; a page may call /mcp only from localhost or an origin in
   * MCP_ALLOWED_ORIGINS, so that a site the user visits cannot reach the endpoint through DNS
   * rebinding (the token is still required).
   */
  const originRefused = (req: FastifyRequest, reply: FastifyReply): boolean => {
    const origin = req.headers.origin;
    if (origin === undefined) return false;
    let host = '';
    try {
      host = new URL(origin).hostname;
    } catch {
      // not an origin at all: refused below
    }
    if (['localhost', '127.0.0.1', '[::1]'].includes(host) || allowed.has(origin)) return false;
    void rpcError(reply, 403, -32000, `tavily-pool: requests from the web origin ${origin} are not allowed; add it to MCP_ALLOWED_ORIGINS`);
    return true;
  };

  /**
   * The last refusal of a token per client address: a client that meets a 401 may start an OAuth
   * sign-in (mcp-remote, the SDK's auth provider) and registers at /register, without the token;
   * that answer then says why the token was refused. Bounded: the oldest address goes first.
   */
  const refusals = new Map<string, { message: string; at: number }>();
  const remember = (ip: string, message: string) => {
    refusals.delete(ip);
    refusals.set(ip, { message, at: Date.now() });
    if (refusals.size > REFUSAL_MEMORY_SIZE) refusals.delete(refusals.keys().next().value!);
  };
  const noOAuth = (req: FastifyRequest): string => {
    const how = 'tavily-pool has no OAuth sign-in: give the MCP client its client token as the header "Authorization: Bearer tp_…", or in the URL as ?tavilyApiKey=tp_…';
    const last = refusals.get(req.ip);
    if (last && Date.now() - last.at < REFUSAL_MEMORY_MS) return `${last.message} (${how})`;
    return `${how}; check the token in the client's configuration.`;
  };

  /** The client token, or a 401 with WWW-Authenticate saying what is wrong. */
  const authenticate = (req: FastifyRequest, reply: FastifyReply): TokenState | null => {
    const query = req.query as { tavilyApiKey?: unknown };
    const presented = bearerToken(req.headers.authorization) ?? (typeof query.tavilyApiKey === 'string' && query.tavilyApiKey !== '' ? query.tavilyApiKey : null);
    try {
      return clientToken(opts, req, presented);
    } catch (err) {
      if (!(err instanceof GatewayError)) throw err;
      remember(req.ip, err.message);
      reply.header('www-authenticate', `Bearer realm="tavily-pool", error="invalid_token", error_description="${err.message.replace(/"/g, "'")}"`);
      reply.header('connection', 'close');
      void rpcError(reply, 401, -32001, err.message);
      return null;
    }
  };

  // A body that is not JSON (or not sent as JSON) is JSON-RPC's parse error, not the gateway's 400.
  app.setErrorHandler((err, req, reply) => {
    if (clientWentAway(err, req, reply)) return reply;
    const e = err as { statusCode?: number; code?: string; message: string };
    const status = e.statusCode ?? 500;
    if (status >= 500) {
      log.error({ err }, 'MCP request failed');
      return rpcError(reply, 500, -32603, 'tavily-pool: internal error; the server log has the details');
    }
    // As the SDK's transport answers a text/plain body.
    if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return rpcError(reply, 415, -32000, 'Unsupported Media Type: Content-Type must be application/json');
    if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return rpcError(reply, 413, PARSE_ERROR, `Parse error: the message is larger than the ${app.initialConfig.bodyLimit} bytes allowed`);
    if (e.code === 'invalid_encoding') return rpcError(reply, 400, PARSE_ERROR, `Parse error: ${e.message}`);
    if (e.code?.startsWith('FST_ERR_CTP_') || err instanceof SyntaxError) return rpcError(reply, 400, PARSE_ERROR, `Parse error: the body is not JSON (${e.message})`);
    return rpcError(reply, status, -32600, e.message);
  });

  const post = async (req: FastifyRequest, reply: FastifyReply) => {
    if (originRefused(req, reply)) return reply;
    const token = authenticate(req, reply);
    if (!token) return reply;
    const nameless = namelessToolCall(req.body);
    if (nameless) return rpcError(reply, 200, INVALID_PARAMS, 'Invalid params: tools/call needs params.name, the name of a tool from tools/list', nameless.id);
    // X-Tavily-Pool-Cache: bypass on the HTTP request asks Tavily for every tool call in it.
    const server = createMcpServer(deps, token, req.ip, bypassAsked(req.headers[CACHE_HEADER]));
    // A plain JSON answer, unless the message may need to stream progress first (a research
    // call): an event stream costs more to open and to read.
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: !mayStream(req.body) });
    reply.hijack();
    reply.raw.once('close', () => {
      void transport.close();
      void server.close();
    });
    try {
      await server.connect(transport);
      await transport.handleRequest(req.raw, reply.raw, req.body);
    } catch (err) {
      log.error({ err }, 'MCP request failed');
      if (!reply.raw.headersSent) {
        reply.raw.writeHead(500, { 'content-type': 'application/json' });
        reply.raw.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32603, message: 'internal error' }, id: null }));
      }
    }
  };

  // Stateless: no stream of server-initiated messages to open, and no session to end.
  const notAllowed = async (req: FastifyRequest, reply: FastifyReply) => {
    if (originRefused(req, reply) || !authenticate(req, reply)) return reply;
    reply.header('allow', 'POST');
    return rpcError(reply, 405, -32000, 'Method not allowed: this MCP server is stateless; send each message as a POST to /mcp');
  };
  // `/mcp/` too: Tavily's documentation gives its hosted server as https://mcp.tavily.com/mcp/?tavilyApiKey=….
  for (const url of ['/mcp', '/mcp/']) {
    app.post(url, { logLevel: 'warn', schema: { hide: true } }, post);
    app.get(url, { logLevel: 'warn', schema: { hide: true } }, notAllowed);
    app.delete(url, { logLevel: 'warn', schema: { hide: true } }, notAllowed);
  }

  // No OAuth here. A client that meets a 401 may look for an authorization server: the probes
  // are answered (404 for the documents, an OAuth error for registration and tokens) with a
  // message that says so, which the client shows instead of a bare "registration rejected".
  const noDocument = async (req: FastifyRequest, reply: FastifyReply) =>
    reply.code(404).type('application/json').send({ error: 'not_found', error_description: noOAuth(req) });
  for (const doc of DISCOVERY) {
    app.get(`/.well-known/${doc}`, { logLevel: 'warn', schema: { hide: true } }, noDocument);
    app.get(`/.well-known/${doc}/*`, { logLevel: 'warn', schema: { hide: true } }, noDocument);
  }
  const oauthRefused = async (req: FastifyRequest, reply: FastifyReply) =>
    reply.code(400).type('application/json').header('cache-control', 'no-store').send({ error: 'invalid_client_metadata', error_description: noOAuth(req) });
  app.post('/register', { logLevel: 'warn', schema: { hide: true } }, oauthRefused);
  app.post('/token', { logLevel: 'warn', schema: { hide: true } }, oauthRefused);
  app.get('/authorize', { logLevel: 'warn', schema: { hide: true } }, async (req, reply) => reply.code(400).type('text/plain; charset=utf-8').send(noOAuth(req)));
}

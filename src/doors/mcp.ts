import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { bearerToken } from '../crypto.js';
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

/** A JSON-RPC error answer outside any session (the request's id is not known here). */
function rpcError(reply: FastifyReply, status: number, code: number, message: string) {
  return reply.code(status).type('application/json').send({ jsonrpc: '2.0', error: { code, message }, id: null });
}

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

  /** The client token, or a 401 with WWW-Authenticate saying what is wrong. */
  const authenticate = (req: FastifyRequest, reply: FastifyReply): TokenState | null => {
    const query = req.query as { tavilyApiKey?: unknown };
    const presented = bearerToken(req.headers.authorization) ?? (typeof query.tavilyApiKey === 'string' && query.tavilyApiKey !== '' ? query.tavilyApiKey : null);
    try {
      return clientToken(opts, req, presented);
    } catch (err) {
      if (!(err instanceof GatewayError)) throw err;
      reply.header('www-authenticate', `Bearer realm="tavily-pool", error="invalid_token", error_description="${err.message.replace(/"/g, "'")}"`);
      reply.header('connection', 'close');
      void rpcError(reply, 401, -32001, err.message);
      return null;
    }
  };

  app.post('/mcp', { logLevel: 'warn', schema: { hide: true } }, async (req, reply) => {
    if (originRefused(req, reply)) return reply;
    const token = authenticate(req, reply);
    if (!token) return reply;
    const server = createMcpServer(deps, token, req.ip);
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
  });

  // Stateless: no stream of server-initiated messages to open, and no session to end.
  const notAllowed = async (req: FastifyRequest, reply: FastifyReply) => {
    if (originRefused(req, reply) || !authenticate(req, reply)) return reply;
    reply.header('allow', 'POST');
    return rpcError(reply, 405, -32000, 'Method not allowed: this MCP server is stateless; send each message as a POST to /mcp');
  };
  app.get('/mcp', { logLevel: 'warn', schema: { hide: true } }, notAllowed);
  app.delete('/mcp', { logLevel: 'warn', schema: { hide: true } }, notAllowed);
}

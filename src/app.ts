import { STATUS_CODES } from 'node:http';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Ajv, type ErrorObject } from 'ajv';
import addFormatsModule from 'ajv-formats';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import { adminApi } from './admin/index.js';
import { AccountObject, Drift, ErrorBody, KeyObject, RefreshResponse } from './admin/schemas.js';
import type { AppContext } from './context.js';
import { TavilyError, gatewayRoutes } from './gateway/routes.js';
import { TokenObject } from './admin/tokens.js';
import { describeError } from './http-errors.js';
import { accessLog } from './plugins/access-log.js';
import { dashboard } from './plugins/dashboard.js';
import { health } from './plugins/health.js';
import { metrics } from './plugins/metrics.js';
import { mcp } from './plugins/mcp.js';
import { securityHeaders } from './plugins/security.js';
import { packageVersion } from './paths.js';

declare module 'fastify' {
  interface FastifyInstance {
    ctx: AppContext;
  }
}

type AddFormats = (ajv: Ajv) => Ajv;
const addFormats: AddFormats =
  (addFormatsModule as unknown as { default?: AddFormats }).default ?? (addFormatsModule as unknown as AddFormats);

function makeAjv(coerce: boolean): Ajv {
  const ajv = new Ajv({
    allErrors: false,
    strict: false,
    useDefaults: true,
    // Unknown fields are an error that names them, not silently dropped.
    removeAdditional: false,
    // Query strings and path parameters arrive as text; JSON bodies must carry the right types.
    coerceTypes: coerce ? 'array' : false,
    // Errors carry their schema, so that a pattern's description can name what is expected.
    verbose: true,
  });
  addFormats(ajv);
  return ajv;
}

/** `/keys/0` → `body.keys[0]` */
function fieldPath(dataVar: string, instancePath: string): string {
  return instancePath
    .split('/')
    .slice(1)
    .reduce((acc, part) => (/^\d+$/.test(part) ? `${acc}[${part}]` : `${acc}.${part.replace(/~1/g, '/').replace(/~0/g, '~')}`), dataVar);
}

/** One clear sentence naming the field that is wrong and why. */
export function formatSchemaErrors(errors: ErrorObject[], dataVar: string): Error {
  const specific = errors.filter((x) => x.keyword !== 'anyOf' && x.keyword !== 'oneOf');
  // Of a union's branches, the one whose type matched says what is wrong with the value
  // (`urls: []` is an empty array, not "not a string").
  const e = specific.find((x) => x.keyword !== 'type') ?? specific[0] ?? errors[0]!;
  const where = fieldPath(dataVar, e.instancePath);
  const params = e.params as Record<string, unknown>;
  let text: string;
  switch (e.keyword) {
    case 'minItems':
    case 'minLength':
      text = params.limit === 1 ? `${where} must not be empty` : `${where} ${e.message ?? 'is too short'}`;
      break;
    case 'pattern': {
      const description = (e.parentSchema as { description?: unknown } | undefined)?.description;
      text = typeof description === 'string' ? `${where} must be ${description}` : `${where} ${e.message ?? 'is invalid'}`;
      break;
    }
    case 'additionalProperties':
      text = `${where} has an unknown field "${String(params.additionalProperty)}"`;
      break;
    case 'required':
      text = `${where} is missing the field "${String(params.missingProperty)}"`;
      break;
    case 'enum':
      text = `${where} must be one of: ${(params.allowedValues as unknown[]).join(', ')}`;
      break;
    case 'minProperties':
      text = `${where} must have at least ${String(params.limit)} field(s)`;
      break;
    default:
      text = `${where} ${e.message ?? 'is invalid'}`;
  }
  return new Error(text);
}

/**
 * Answers a request Node could not read (too slow, headers too large, not HTTP), then closes
 * the connection. The URL is not known at this point, so the body carries both envelopes:
 * Tavily's `detail.error` for SDKs and the admin API's `error`.
 */
function clientError(config: AppContext['config'], log: FastifyBaseLogger) {
  return (err: NodeJS.ErrnoException, socket: import('node:stream').Duplex) => {
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    let status: number;
    let code: string;
    let message: string;
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      status = 408;
      code = 'request_timeout';
      message = `tavily-pool: the request did not arrive in full within ${config.requestTimeoutMs} ms (REQUEST_TIMEOUT_MS)`;
    } else if (err.code === 'HPE_HEADER_OVERFLOW') {
      status = 431;
      code = 'headers_too_large';
      message = 'tavily-pool: the request headers are larger than 16 KiB';
    } else {
      status = 400;
      code = 'bad_request';
      message = 'tavily-pool: the request is not valid HTTP';
    }
    log.debug({ code: err.code, status }, 'client connection refused');
    const body = JSON.stringify({ detail: { error: message }, error: { code, message } });
    if (socket.writable) {
      socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    }
    socket.destroy();
  };
}

export interface AppOptions {
  /** The MCP research tool's first wait before it polls (2 s; tests shorten it). */
  mcpResearchPollMs?: number;
}

/** Builds the Fastify app from a context; no side effects beyond the app itself. */
export async function buildApp(ctx: AppContext, opts: AppOptions = {}): Promise<FastifyInstance> {
  const { requestTimeoutMs, headersTimeoutMs, keepAliveTimeoutMs } = ctx.config;
  const app = Fastify({
    loggerInstance: ctx.log as FastifyBaseLogger,
    // 1 MiB for everything but key imports, which set their own limit.
    bodyLimit: 1024 * 1024,
    // Slow clients are cut by limits: the whole request within requestTimeout (408 after),
    // its headers within headersTimeout, idle keep-alive connections after keepAliveTimeout.
    // Responses (research event streams) are not limited by these.
    requestTimeout: requestTimeoutMs,
    keepAliveTimeout: keepAliveTimeoutMs,
    http: {
      headersTimeout: headersTimeoutMs,
      requestTimeout: requestTimeoutMs,
      keepAliveTimeout: keepAliveTimeoutMs,
      // Node checks those limits this often (30 s by default, which would let a 1 s limit last 30 s).
      connectionsCheckingInterval: Math.min(1000, Math.ceil(headersTimeoutMs / 2)),
    },
    trustProxy: true,
    // A base URL with a trailing slash (http://host:8080/) makes the SDKs call //search.
    routerOptions: { ignoreDuplicateSlashes: true },
    schemaErrorFormatter: formatSchemaErrors,
    clientErrorHandler: clientError(ctx.config, ctx.log as FastifyBaseLogger),
    // One access-log line per request, with credentials redacted from the URL (plugins/access-log.ts).
    logController: new LogController({ disableRequestLogging: true }),
  }).withTypeProvider<TypeBoxTypeProvider>();

  const bodyAjv = makeAjv(false);
  const textAjv = makeAjv(true);
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? bodyAjv : textAjv).compile(schema));

  // An empty JSON body is "no body" (POST …/refresh-quota with no options), not a parse error.
  const jsonParser = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    if (typeof body === 'string' && body.trim() === '') return done(null, undefined);
    jsonParser(req, body as string, done);
  });

  app.decorate('ctx', ctx);
  app.addSchema(ErrorBody);
  app.addSchema(Drift);
  app.addSchema(KeyObject);
  app.addSchema(AccountObject);
  app.addSchema(RefreshResponse);
  app.addSchema(TokenObject);
  app.addSchema(TavilyError);

  await app.register(swagger, {
    openapi: {
      info: { title: 'tavily-pool', version: packageVersion(), description: 'A pool of Tavily API keys behind one endpoint.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });

  app.setErrorHandler((err, req, reply) => {
    const p = describeError(err);
    if (p.statusCode >= 500) req.log.error({ err }, 'request failed');
    return reply.code(p.statusCode).send({ error: { code: p.code, message: p.message } });
  });
  // Outside /api the clients are Tavily SDKs: answer in Tavily's shape so they show the message.
  app.setNotFoundHandler((req, reply) => {
    const message = `no route ${req.method} ${req.url.split('?')[0]}`;
    if (req.url.startsWith('/api/')) return reply.code(404).send({ error: { code: 'not_found', message } });
    return reply.code(404).send({ detail: { error: message } });
  });

  app.get('/api/v1/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  accessLog(app);
  // The dashboard, the admin API and the health routes share the security headers; the
  // gateway routes answer SDKs with JSON and stay lean.
  await app.register(async (web) => {
    await securityHeaders(web);
    await web.register(health);
    await web.register(metrics);
    await web.register(adminApi, { prefix: '/api/v1/admin' });
    await web.register(dashboard);
  });
  await app.register(gatewayRoutes);
  await app.register(mcp, { version: packageVersion(), researchPollMs: opts.mcpResearchPollMs });
  return app;
}

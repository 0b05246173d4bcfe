import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import { adminApi } from './admin/index.js';
import type { AppContext } from './context.js';
import { gatewayRoutes } from './doors/rest.js';
import { accessLog } from './plugins/access-log.js';
import { dashboard } from './plugins/dashboard.js';
import { clientError, errors } from './plugins/errors.js';
import { health } from './plugins/health.js';
import { mcp } from './doors/mcp.js';
import { metrics } from './plugins/metrics.js';
import { openapi } from './plugins/openapi.js';
import { securityHeaders } from './plugins/security.js';
import { cachedSerializers } from './plugins/compiled-schemas.js';
import { formatSchemaErrors, validation } from './plugins/validation.js';
import { packageVersion } from './paths.js';

export interface AppOptions {
  /** The MCP research tool's first wait before it polls (2 s; tests shorten it). */
  mcpResearchPollMs?: number;
}

/**
 * Builds the Fastify app from a context: the server's limits here, everything else in plugins
 * by concern — how requests are checked (validation), errors and unknown routes (errors), the
 * OpenAPI document, then the doors: health, metrics, the admin API and the dashboard (behind
 * the security headers), the gateway's REST routes and the MCP endpoint.
 */
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
    // X-Forwarded-For is believed only from the proxies listed in TRUSTED_PROXIES: otherwise any
    // client could claim any address (the audit log and the tokens' network limits use it).
    trustProxy: ctx.config.trustedProxies.length > 0 ? ctx.config.trustedProxies : false,
    // A base URL with a trailing slash (http://host:8080/) makes the SDKs call //search.
    routerOptions: { ignoreDuplicateSlashes: true },
    // Validation errors name the field and what it must be (plugins/validation.ts).
    schemaErrorFormatter: formatSchemaErrors,
    // Response serializers compiled once per schema in this process (plugins/compiled-schemas.ts).
    schemaController: { compilersFactory: { buildSerializer: cachedSerializers } },
    clientErrorHandler: clientError(ctx.config, ctx.log as FastifyBaseLogger),
    // One access-log line per request, with credentials redacted from the URL (plugins/access-log.ts).
    logController: new LogController({ disableRequestLogging: true }),
  }).withTypeProvider<TypeBoxTypeProvider>();

  await app.register(validation);
  await app.register(errors);
  await app.register(openapi);
  accessLog(app);
  // The dashboard, the admin API and the health routes share the security headers; the
  // gateway routes answer SDKs with JSON and stay lean.
  await app.register(async (web) => {
    await securityHeaders(web);
    await web.register(health, ctx.health);
    await web.register(metrics, { metrics: ctx.metrics, token: ctx.config.metricsToken });
    await web.register(adminApi, {
      prefix: '/api/v1/admin',
      services: ctx.services,
      adminToken: ctx.adminToken,
      audit: ctx.audit,
      importBodyLimit: ctx.config.importBodyLimit,
      validateOnImport: ctx.config.validateOnImport,
    });
    await web.register(dashboard);
  });
  // The doors onto the gateway core, side by side.
  const door = { gateway: ctx.gateway, audit: ctx.audit };
  await app.register(gatewayRoutes, door);
  await app.register(mcp, { ...door, log: ctx.log, allowedOrigins: ctx.config.mcpAllowedOrigins, version: packageVersion(), researchPollMs: opts.mcpResearchPollMs });
  return app;
}

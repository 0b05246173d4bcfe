import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { bearerToken, secretsEqual } from '../crypto.js';
import { clientWentAway, describeError } from '../http/errors.js';
import { assertStorableInput } from '../http/input.js';
import { accountRoutes } from './accounts.js';
import { alertRoutes } from './alerts.js';
import { auditRoutes } from './audit.js';
import { instanceRoutes } from './instances.js';
import { ApiError } from '../http/api-error.js';
import { keyRoutes } from './keys.js';
import { logRoutes } from './logs.js';
import { tokenRoutes } from './tokens.js';
import type { AuditLog } from '../audit/audit.js';
import type { AdminServices } from '../services/index.js';

export interface AdminOptions {
  services: AdminServices;
  adminToken: string;
  /** Counts refused sign-ins. */
  audit: Pick<AuditLog, 'refused'>;
  /** The largest key import or bulk change body (IMPORT_BODY_LIMIT_BYTES). */
  importBodyLimit: number;
  /** Whether new keys are checked against /usage once the import is answered (VALIDATE_ON_IMPORT). */
  validateOnImport: boolean;
}

/** Everything under /api/v1/admin: bearer auth and the {"error": {"code", "message"}} envelope. */
export const adminApi: FastifyPluginAsyncTypebox<AdminOptions> = async (app, opts) => {
  const token = opts.adminToken;

  app.addHook('onRequest', async (req, reply) => {
    const presented = bearerToken(req.headers.authorization);
    if (presented === null || !secretsEqual(presented, token)) {
      opts.audit.refused(req, 'admin.signin_failed');
      reply.header('www-authenticate', 'Bearer realm="tavily-pool admin"');
      // Answered before the body is read; the connection is not kept for more.
      reply.header('connection', 'close');
      const hint = presented?.startsWith('tp_')
        ? 'that is a client token, for the gateway routes: the admin API takes the ADMIN_TOKEN'
        : presented === null
          ? 'missing admin token: send Authorization: Bearer <ADMIN_TOKEN>'
          : 'wrong admin token: send Authorization: Bearer <ADMIN_TOKEN> (DATA_DIR/admin-token when it was generated)';
      throw new ApiError(401, 'unauthorized', hint);
    }
  });

  // Text no database can store (a NUL, an unpaired surrogate) is refused before any handler.
  app.addHook('preValidation', async (req) => assertStorableInput(req));

  app.setErrorHandler((err, req, reply) => {
    if (clientWentAway(err, req, reply)) return reply;
    if (err instanceof ApiError && err.close) reply.header('connection', 'close');
    // Fastify closes the connection after any body-parser error. For an import past the key
    // cap the rest of the body is bounded by IMPORT_BODY_LIMIT_BYTES and REQUEST_TIMEOUT_MS and
    // is read and thrown away instead: closing while the client still sends makes its kernel
    // reset the connection, and the client may lose the answer.
    if (err instanceof ApiError && err.code === 'too_many_keys') reply.removeHeader('connection');
    const p = describeError(err);
    if (p.statusCode >= 500) req.log.error({ err }, 'admin request failed');
    return reply.code(p.statusCode).send({ error: { code: p.code, message: p.message } });
  });

  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send({ error: { code: 'not_found', message: `no admin route ${req.method} ${req.url.split('?')[0]}` } }),
  );

  const { services } = opts;
  await app.register(keyRoutes, { keys: services.keys, importBodyLimit: opts.importBodyLimit, validateOnImport: opts.validateOnImport });
  await app.register(accountRoutes, { accounts: services.accounts });
  await app.register(tokenRoutes, { tokens: services.tokens });
  await app.register(logRoutes, { logs: services.logs });
  await app.register(alertRoutes, { alerts: services.alerts });
  await app.register(auditRoutes, { logs: services.logs });
  await app.register(instanceRoutes, { instances: services.instances });
};

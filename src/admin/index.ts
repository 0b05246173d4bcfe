import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { bearerToken, secretsEqual } from '../crypto.js';
import { describeError } from '../http-errors.js';
import { ApiError } from './errors.js';
import { keyRoutes } from './keys.js';
import { logRoutes } from './logs.js';
import { tokenRoutes } from './tokens.js';

/** Everything under /api/v1/admin: bearer auth and the {"error": {"code", "message"}} envelope. */
export const adminApi: FastifyPluginAsyncTypebox = async (app) => {
  const token = app.ctx.adminToken;

  app.addHook('onRequest', async (req, reply) => {
    const presented = bearerToken(req.headers.authorization);
    if (presented === null || !secretsEqual(presented, token)) {
      reply.header('www-authenticate', 'Bearer realm="tavily-pool admin"');
      throw new ApiError(401, 'unauthorized', 'missing or wrong admin token: send Authorization: Bearer <ADMIN_TOKEN>');
    }
  });

  app.setErrorHandler((err, req, reply) => {
    const p = describeError(err);
    if (p.statusCode >= 500) req.log.error({ err }, 'admin request failed');
    return reply.code(p.statusCode).send({ error: { code: p.code, message: p.message } });
  });

  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send({ error: { code: 'not_found', message: `no admin route ${req.method} ${req.url.split('?')[0]}` } }),
  );

  await app.register(keyRoutes);
  await app.register(tokenRoutes);
  await app.register(logRoutes);
};

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { withErrors } from './schemas.js';

const InstanceObject = Type.Object({
  id: Type.String(),
  self: Type.Boolean({ description: 'the instance that answered' }),
  host: Type.String(),
  version: Type.String(),
  started_at: Type.String({ format: 'date-time' }),
  last_seen: Type.String({ format: 'date-time', description: 'its last heartbeat (every 15 s)' }),
  lost: Type.Boolean({ description: 'not heard for 45 s: stopped, or cut off' }),
  listening: Type.Boolean({ description: 'it hears the other instances’ changes' }),
  request_log_ok: Type.Boolean(),
  pending_rows: Type.Integer(),
  keys_available: Type.Integer(),
  credits_remaining: Type.Number(),
});

/** GET /instances: this instance, and on PostgreSQL the others as their heartbeats say. */
export const instanceRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/instances',
    {
      schema: {
        tags: ['summary'],
        summary: 'The instances of this deployment and what each reports',
        response: withErrors({ 200: Type.Object({ items: Type.Array(InstanceObject) }) }),
      },
    },
    async () => ({ items: app.ctx.instances.list() }),
  );
};

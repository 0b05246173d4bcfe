import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { InstanceListResponse } from './log-schemas.js';
import { withErrors } from './schemas.js';

/** GET /instances: this instance, and on PostgreSQL the others as their heartbeats say. */
export const instanceRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/instances',
    {
      schema: {
        tags: ['summary'],
        summary: 'The instances of this deployment and what each reports',
        response: withErrors({ 200: InstanceListResponse }),
      },
    },
    async () => ({ items: app.ctx.instances.list() }),
  );
};

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { InstanceListResponse } from '../schemas/logs.js';
import { withErrors } from '../schemas/keys.js';
import type { AdminServices } from '../services/index.js';

/** GET /instances: this instance, and on PostgreSQL the others as their heartbeats say. */
export const instanceRoutes: FastifyPluginAsyncTypebox<{ instances: AdminServices['instances'] }> = async (app, { instances }) => {
  app.get(
    '/instances',
    {
      schema: {
        tags: ['summary'],
        summary: 'The instances of this deployment and what each reports',
        response: withErrors({ 200: InstanceListResponse }),
      },
    },
    async () => ({ items: instances.list() }),
  );
};

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { AuditObject } from '../schemas/audit.js';
import { Nullable, RowId, withErrors } from '../schemas/keys.js';
import type { LogService } from '../services/logs.js';

/** GET /audit: who changed what, newest first. */
export const auditRoutes: FastifyPluginAsyncTypebox<{ logs: LogService }> = async (app, { logs }) => {
  app.get(
    '/audit',
    {
      schema: {
        tags: ['audit'],
        summary: 'The audit log: admin changes and refused credentials, newest first',
        querystring: Type.Object(
          {
            action: Type.Optional(Type.String({ maxLength: 100, pattern: '^[a-z_.]+$', description: 'an action (keys.delete) or a family (keys)' })),
            from: Type.Optional(Type.String({ format: 'date-time' })),
            to: Type.Optional(Type.String({ format: 'date-time' })),
            limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
            before: Type.Optional(RowId('rows before this id: the `next` of the previous page')),
          },
          { additionalProperties: false },
        ),
        response: withErrors({ 200: Type.Object({ items: Type.Array(AuditObject), next: Nullable(Type.Integer()) }) }),
      },
    },
    async (req) => {
      const q = req.query;
      return logs.audit({
        action: q.action,
        from: q.from ? new Date(q.from).toISOString() : undefined,
        to: q.to ? new Date(q.to).toISOString() : undefined,
        limit: q.limit,
        before: q.before,
      });
    },
  );
};

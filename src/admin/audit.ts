import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { Nullable, RowId, withErrors } from './schemas.js';

export const AuditObject = Type.Object({
  id: Type.Integer(),
  at: Type.String({ format: 'date-time' }),
  action: Type.String({ description: 'keys.add, keys.update, keys.delete, keys.bulk, keys.export, keys.refresh, accounts.*, tokens.*, alerts.*, admin.signin_failed, gateway.unknown_token' }),
  targets: Nullable(Type.Record(Type.String(), Type.Unknown(), { description: 'what it was done to: ids, names, counts (never a key or a token)' })),
  outcome: Type.String({ description: '`ok`, or `refused` for a refused credential (targets.attempts counts them)' }),
  remote_addr: Nullable(Type.String()),
  user_agent: Nullable(Type.String()),
});

/** GET /audit: who changed what, newest first. */
export const auditRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const ctx = app.ctx;
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
      return ctx.auditRepo.list({
        action: q.action,
        from: q.from ? new Date(q.from).toISOString() : undefined,
        to: q.to ? new Date(q.to).toISOString() : undefined,
        limit: q.limit,
        before: q.before,
      });
    },
  );
};

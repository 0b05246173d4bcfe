import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { ENDPOINT_NAMES, type EndpointName } from '../gateway/endpoint-names.js';
import { ApiError } from './errors.js';
import { LogListResponse, STATUS_CLASSES, type StatusClass, StatsResponse } from './log-schemas.js';
import { RowId, withErrors } from './schemas.js';

const DAY_MS = 24 * 3600_000;

export const logRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const ctx = app.ctx;

  app.get(
    '/logs',
    {
      schema: {
        tags: ['logs'],
        summary: 'The request log, newest first',
        querystring: Type.Object(
          {
            from: Type.Optional(Type.String({ format: 'date-time' })),
            to: Type.Optional(Type.String({ format: 'date-time' })),
            token_id: Type.Optional(RowId()),
            key_id: Type.Optional(RowId()),
            endpoint: Type.Optional(Type.Unsafe<EndpointName>({ type: 'string', enum: [...ENDPOINT_NAMES] })),
            status: Type.Optional(Type.Integer({ minimum: 100, maximum: 599 })),
            failed_key_id: Type.Optional(RowId('requests this key failed: its own error answers, and the requests that failed over from it (scans the rows in from/to: give a window)')),
            status_class: Type.Optional(Type.Unsafe<StatusClass>({ type: 'string', enum: [...STATUS_CLASSES], description: '2xx, 4xx, 5xx, or errors (any status from 400)' })),
            limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
            // Log ids are exact in JavaScript up to 2^53: 15 digits are always below it.
            cursor: Type.Optional(Type.String({ pattern: '^[0-9]{1,15}$', description: 'the next_cursor of a previous page' })),
          },
          { additionalProperties: false },
        ),
        response: withErrors({ 200: LogListResponse }),
      },
    },
    async (req) => {
      const q = req.query;
      // Requests that completed are in the answer, not still waiting in the buffer.
      await ctx.writeBehind.flush();
      const iso = (s?: string) => (s === undefined ? undefined : new Date(s).toISOString());
      const page = await ctx.logs.list({
        from: iso(q.from),
        to: iso(q.to),
        tokenId: q.token_id,
        keyId: q.key_id,
        endpoint: q.endpoint,
        status: q.status,
        statusClass: q.status_class,
        failedKeyId: q.failed_key_id,
        limit: q.limit,
        before: q.cursor === undefined ? undefined : Number(q.cursor),
      });
      return { items: page.rows, next_cursor: page.next === null ? null : String(page.next) };
    },
  );

  app.get(
    '/stats',
    {
      schema: {
        tags: ['logs'],
        summary: 'Requests, credits and errors by hour, day, key and token',
        description: 'Over [from, to); the last 7 days by default. Errors are answers with status ≥ 400.',
        querystring: Type.Object(
          { from: Type.Optional(Type.String({ format: 'date-time' })), to: Type.Optional(Type.String({ format: 'date-time' })) },
          { additionalProperties: false },
        ),
        response: withErrors({
          200: StatsResponse,
        }),
      },
    },
    async (req) => {
      const to = req.query.to ? new Date(req.query.to) : new Date(Date.now() + 1000);
      const from = req.query.from ? new Date(req.query.from) : new Date(to.getTime() - 7 * DAY_MS);
      if (from >= to) throw new ApiError(400, 'invalid_request', 'querystring.from must be before querystring.to');
      await ctx.writeBehind.flush();
      return { from: from.toISOString(), to: to.toISOString(), ...(await ctx.logs.stats(from.toISOString(), to.toISOString())) };
    },
  );
};

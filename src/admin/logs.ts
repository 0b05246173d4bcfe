import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { ENDPOINT_NAMES, type EndpointName } from '../schemas/endpoint-names.js';
import { LogListResponse, STATUS_CLASSES, type StatusClass, StatsResponse } from '../schemas/logs.js';
import { RowId, withErrors } from '../schemas/keys.js';
import type { LogService } from '../services/logs.js';

/** /logs and /stats: the request log and what it adds up to. */
export const logRoutes: FastifyPluginAsyncTypebox<{ logs: LogService }> = async (app, { logs }) => {

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
      const iso = (t?: string) => (t === undefined ? undefined : new Date(t).toISOString());
      return logs.list({
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
    async (req) => logs.stats(req.query),
  );
};

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { ENDPOINT_NAMES, type EndpointName } from '../gateway/endpoint-names.js';
import { ApiError } from './errors.js';
import { Nullable, RowId, withErrors } from './schemas.js';

const LogObject = Type.Object({
  id: Type.Integer(),
  ts: Type.String({ format: 'date-time' }),
  token_id: Nullable(Type.Integer()),
  key_id: Nullable(Type.Integer()),
  endpoint: Type.String(),
  status: Type.Integer(),
  attempts: Type.Integer(),
  latency_ms: Nullable(Type.Number()),
  credits: Type.Number(),
  request_id: Nullable(Type.String({ description: 'Tavily’s request_id' })),
  error: Nullable(Type.String()),
  via: Type.Unsafe<'rest' | 'mcp'>({ type: 'string', enum: ['rest', 'mcp'], description: 'the door the request came through: Tavily’s REST routes, or the MCP endpoint' }),
  requests: Type.Integer({ description: 'requests the row stands for: 1, or the count of refusals (429, 432 from the gateway) aggregated per token, endpoint and status over a few seconds' }),
});

const Counts = { requests: Type.Integer(), credits: Type.Number(), errors: Type.Integer() };
const Bucket = Type.Object({ bucket: Type.String(), ...Counts });

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
            limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
            // Log ids are exact in JavaScript up to 2^53: 15 digits are always below it.
            cursor: Type.Optional(Type.String({ pattern: '^[0-9]{1,15}$', description: 'the next_cursor of a previous page' })),
          },
          { additionalProperties: false },
        ),
        response: withErrors({ 200: Type.Object({ items: Type.Array(LogObject), next_cursor: Type.Union([Type.String(), Type.Null()]) }) }),
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
          200: Type.Object({
            from: Type.String(),
            to: Type.String(),
            by_hour: Type.Array(Bucket),
            by_day: Type.Array(Bucket),
            by_key: Type.Array(Type.Object({ key_id: Nullable(Type.Integer()), key_masked: Nullable(Type.String()), ...Counts })),
            by_token: Type.Array(Type.Object({ token_id: Nullable(Type.Integer()), token_name: Nullable(Type.String()), ...Counts })),
          }),
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

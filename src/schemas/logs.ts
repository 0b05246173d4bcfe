/**
 * The request log's, the statistics' and the instances' schemas. Only TypeBox and other schema
 * modules here: the dashboard imports these for its types.
 */
import { Type } from '@sinclair/typebox';
import { Nullable } from './keys.js';
export { STATUS_CLASSES, type StatusClass } from './endpoint-names.js';

export const LogObject = Type.Object({
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
  cache: Type.Union([Type.Unsafe<'hit' | 'joined' | 'miss' | 'bypass'>({ type: 'string', enum: ['hit', 'joined', 'miss', 'bypass'] }), Type.Null()], {
    description: 'the answer cache: hit (a stored answer), joined (an identical request’s, in flight), miss (Tavily asked, the answer stored), bypass (the client asked for Tavily); null: no cache for this request',
  }),
  credits_saved: Type.Number({ description: 'credits a hit or a joined answer saved (what Tavily charged for it)' }),
  requests: Type.Integer({ description: 'requests the row stands for: 1, or the count of refusals (429, 432 from the gateway) aggregated per token, endpoint and status over a few seconds' }),
  key_masked: Nullable(Type.String({ description: 'the key that answered, masked' })),
  key_label: Nullable(Type.String()),
  token_name: Nullable(Type.String()),
  failovers: Type.Array(
    Type.Object({
      key_id: Type.Integer(),
      key_masked: Nullable(Type.String()),
      status: Nullable(Type.Integer({ description: 'Tavily’s answer; null: no answer (a network error, a timeout)' })),
      error: Type.String(),
    }),
    { description: 'the keys tried before the one that answered (all of them when none did), in order' },
  ),
});

const Counts = { requests: Type.Integer(), credits: Type.Number(), errors: Type.Integer() };
const Bucket = Type.Object({ bucket: Type.String(), ...Counts });

export const LogListResponse = Type.Object({ items: Type.Array(LogObject), next_cursor: Type.Union([Type.String(), Type.Null()]) });

export const StatsResponse = Type.Object({
  from: Type.String(),
  to: Type.String(),
  by_hour: Type.Array(Bucket),
  by_day: Type.Array(Bucket),
  by_key: Type.Array(Type.Object({ key_id: Nullable(Type.Integer()), key_masked: Nullable(Type.String()), ...Counts })),
  by_token: Type.Array(Type.Object({ token_id: Nullable(Type.Integer()), token_name: Nullable(Type.String()), ...Counts })),
});

export const InstanceObject = Type.Object({
  id: Type.String(),
  self: Type.Boolean({ description: 'the instance that answered' }),
  host: Type.String(),
  version: Type.String(),
  started_at: Type.String({ format: 'date-time' }),
  last_seen: Type.String({ format: 'date-time', description: 'its last heartbeat (every 15 s)' }),
  lost: Type.Boolean({ description: 'not heard for 45 s: stopped, or cut off' }),
  listening: Type.Boolean({ description: 'it hears the other instances’ changes' }),
  request_log_ok: Type.Boolean({ description: 'its request log is being written' }),
  pending_rows: Type.Integer(),
  keys_available: Type.Integer(),
  credits_remaining: Type.Number(),
});

export const InstanceListResponse = Type.Object({ items: Type.Array(InstanceObject) });

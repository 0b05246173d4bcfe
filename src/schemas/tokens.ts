/**
 * The client-token API's schemas. Only TypeBox and other schema modules here: the dashboard imports
 * these for its types, so nothing of the server's runtime may come in.
 */
import { type Static, Type } from '@sinclair/typebox';
import { SCOPE_ENDPOINTS, type ScopeEndpoint } from './endpoint-names.js';
import { Nullable, RefTo } from './keys.js';

export { SCOPE_ENDPOINTS, type ScopeEndpoint };

/** Caps on what one request may cost, checked before any key is spent. */
export const RequestCapsSchema = Type.Object(
  {
    max_credits: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 1000, description: 'the most one request may cost at published prices, from what it asks (an advanced search 2, a crawl of 50 pages 15, mini research 110, pro or auto 250)' }),
    ),
    max_results: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'the most `max_results` (search; 5 when not set) or `limit` (crawl, map; 50 when not set) a request may ask' })),
    advanced: Type.Optional(Type.Boolean({ description: 'false: "advanced" search and extract depth are refused, and so are depths not known and auto_parameters without a search_depth' })),
    research_pro: Type.Optional(Type.Boolean({ description: 'false: research must say model "mini" (pro, auto and no model are refused)' })),
  },
  { additionalProperties: false },
);
export type RequestCaps = Static<typeof RequestCapsSchema>;

/** One of the endpoints a token may be limited to. */
const ScopeEndpointSchema = Type.Unsafe<ScopeEndpoint>({ type: 'string', enum: [...SCOPE_ENDPOINTS] });

export const TokenObject = Type.Object(
  {
    id: Type.Integer(),
    name: Type.String(),
    token_prefix: Type.String({ description: 'the token’s first characters; the token itself is shown once, at creation' }),
    monthly_budget: Nullable(Type.Number({ description: 'credits a UTC month; null: no budget' })),
    rpm_limit: Nullable(Type.Integer()),
    month: Type.String({ description: 'the UTC month month_spent counts (YYYY-MM)' }),
    month_spent: Type.Number(),
    month_held: Type.Number({ description: 'credits of the budget held on this instance by requests in flight (the most each can cost, until its answer settles it) and by research tasks not yet billed' }),
    revoked_at: Nullable(Type.String({ format: 'date-time' })),
    last_used_at: Nullable(Type.String({ format: 'date-time' })),
    endpoints: Type.Union([Type.Array(ScopeEndpointSchema), Type.Null()], { description: 'the endpoints (and MCP tools) it may use; null: all' }),
    networks: Type.Union([Type.Array(Type.String()), Type.Null()], { description: 'the networks it may be used from (CIDR); null: any' }),
    expires_at: Nullable(Type.String({ format: 'date-time', description: 'refused after this; null: never' })),
    caps: Type.Union([RequestCapsSchema, Type.Null()], { description: 'caps on what one request may cost; null: none' }),
    cache_ttl_s: Nullable(Type.Integer({ description: 'seconds an identical request’s answer may be reused, free (0: never); null: the door’s default (REST: no cache; MCP: MCP_CACHE_TTL_S)' })),
    created_at: Type.String({ format: 'date-time' }),
    updated_at: Type.String({ format: 'date-time' }),
  },
  { $id: 'ClientToken' },
);
export type TokenObject = Static<typeof TokenObject>;

/** A week: answers older than that are not reused whatever a token asks (CACHE_MAX_TTL_S may say less). */
export const MAX_CACHE_TTL_S = 604_800;
/** A billion credits a month: ten thousand times Tavily's largest plan. */
const MAX_BUDGET = 1_000_000_000;
const Limits = {
  monthly_budget: Type.Optional(Type.Union([Type.Integer({ minimum: 0, maximum: MAX_BUDGET, description: 'whole credits a UTC month; null: no budget' }), Type.Null()])),
  rpm_limit: Type.Optional(Type.Union([Type.Integer({ minimum: 1, maximum: 1_000_000 }), Type.Null()])),
  endpoints: Type.Optional(
    Type.Union([Type.Array(ScopeEndpointSchema, { minItems: 1, uniqueItems: true }), Type.Null()], {
      description: 'the endpoints (and their MCP tools) it may use; null: all',
    }),
  ),
  networks: Type.Optional(
    Type.Union([Type.Array(Type.String({ minLength: 1, maxLength: 50 }), { minItems: 1, maxItems: 100 }), Type.Null()], {
      description: 'IPv4 and IPv6 networks (10.0.0.0/8, 2001:db8::/32, or an address) it may be used from; null: any',
    }),
  ),
  expires_at: Type.Optional(Type.Union([Type.String({ format: 'date-time' }), Type.Null()], { description: 'refused after this time; null: never' })),
  caps: Type.Optional(Type.Union([RequestCapsSchema, Type.Null()])),
  cache_ttl_s: Type.Optional(
    Type.Union([Type.Integer({ minimum: 0, maximum: MAX_CACHE_TTL_S }), Type.Null()], {
      description: 'seconds an identical request’s answer (same endpoint, same body) may be reused at no cost, and identical requests in flight share one call (0: never; at most CACHE_MAX_TTL_S); null: the door’s default (REST none, MCP MCP_CACHE_TTL_S)',
    }),
  ),
};

export const CreateBody = Type.Object({ name: Type.String({ minLength: 1, maxLength: 100 }), ...Limits }, { additionalProperties: false });
export const PatchBody = Type.Object({ name: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })), ...Limits }, { additionalProperties: false, minProperties: 1 });

export const TokenListResponse = Type.Object({ items: Type.Array(RefTo(TokenObject)) });
export const TokenCreatedResponse = Type.Object({ token: Type.String({ description: 'the token: shown this once' }), item: RefTo(TokenObject) });

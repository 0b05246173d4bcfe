import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { generateToken } from '../crypto.js';
import type { TokenRow } from '../db/schema.js';
import { parseCidr } from '../gateway/scopes.js';
import { CreateBody, PatchBody, type RequestCaps, type ScopeEndpoint, TokenCreatedResponse, TokenListResponse, TokenObject } from './token-schemas.js';
import { hashToken, scopesOfRow, tokenPrefix } from '../gateway/tokens.js';
import type { TokenScopeColumns } from '../db/repositories/tokens.js';
import { ApiError } from './errors.js';
import { RefTo, RowId, withErrors } from './schemas.js';



/** The scope fields of a create or patch body, checked and made storable (undefined: not given). */
function scopeColumns(b: { endpoints?: ScopeEndpoint[] | null; networks?: string[] | null; expires_at?: string | null; caps?: RequestCaps | null }): TokenScopeColumns {
  const out: TokenScopeColumns = {};
  if (b.endpoints !== undefined) out.endpoints = b.endpoints === null ? null : JSON.stringify(b.endpoints);
  if (b.networks !== undefined) {
    if (b.networks !== null) {
      b.networks.forEach((n, i) => {
        try {
          parseCidr(n);
        } catch (err) {
          throw new ApiError(400, 'invalid_request', `body.networks[${i}]: ${(err as Error).message}`);
        }
      });
    }
    out.networks = b.networks === null ? null : JSON.stringify(b.networks.map((n) => n.trim()));
  }
  if (b.expires_at !== undefined) {
    if (b.expires_at !== null && Date.parse(b.expires_at) <= Date.now()) throw new ApiError(400, 'invalid_request', `body.expires_at is in the past (${b.expires_at})`);
    out.expires_at = b.expires_at === null ? null : new Date(b.expires_at).toISOString();
  }
  if (b.caps !== undefined) out.caps = b.caps === null || Object.keys(b.caps).length === 0 ? null : JSON.stringify(b.caps);
  return out;
}
const IdParams = Type.Object({ id: RowId() });

const tags = ['tokens'];

export const tokenRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const ctx = app.ctx;

  /** The row, with this month's spend as the gateway counts it right now. */
  const view = (r: TokenRow) => {
    const live = ctx.tokens.byId(r.id);
    const scopes = scopesOfRow(r);
    return {
      id: r.id,
      name: r.name,
      token_prefix: r.token_prefix,
      monthly_budget: r.monthly_budget,
      rpm_limit: r.rpm_limit,
      month: live?.month ?? r.spent_month,
      month_spent: live?.spent ?? r.month_spent,
      month_held: live ? ctx.budget.held(r.id) : 0,
      revoked_at: r.revoked_at,
      last_used_at: r.last_used_at,
      endpoints: scopes.endpoints,
      networks: scopes.networks,
      expires_at: scopes.expiresAt,
      caps: scopes.caps,
      created_at: r.created_at,
      updated_at: r.updated_at,
    };
  };
  const notFound = (id: number) => new ApiError(404, 'token_not_found', `no client token with id ${id}`);

  app.post(
    '/tokens',
    {
      schema: {
        tags,
        summary: 'Create a client token (shown once)',
        body: CreateBody,
        response: withErrors({ 201: TokenCreatedResponse }),
      },
    },
    async (req, reply) => {
      const token = generateToken('tp_');
      const row = await ctx.database.db.transaction().execute(async (trx) => {
        const made = await ctx.tokensRepo.create(
          {
            name: req.body.name,
            token_hash: hashToken(token).toString('hex'),
            token_prefix: tokenPrefix(token),
            monthly_budget: req.body.monthly_budget ?? null,
            rpm_limit: req.body.rpm_limit ?? null,
            ...scopeColumns(req.body),
          },
          trx,
        );
        await ctx.audit.record(req, trx, 'tokens.create', { id: made.id, name: made.name, monthly_budget: made.monthly_budget, rpm_limit: made.rpm_limit });
        return made;
      });
      await ctx.tokensChanged();
      req.log.info({ token_id: row.id }, 'client token created');
      return reply.code(201).send({ token, item: view(row) });
    },
  );

  app.get(
    '/tokens',
    {
      schema: {
        tags,
        summary: 'List client tokens, with this month’s spend',
        querystring: Type.Object({ include_revoked: Type.Boolean({ default: false }) }, { additionalProperties: false }),
        response: withErrors({ 200: TokenListResponse }),
      },
    },
    async (req) => ({ items: (await ctx.tokensRepo.list(req.query.include_revoked)).map(view) }),
  );

  app.get(
    '/tokens/:id',
    { schema: { tags, summary: 'One client token', params: IdParams, response: withErrors({ 200: RefTo(TokenObject) }) } },
    async (req) => {
      const row = await ctx.tokensRepo.getById(req.params.id);
      if (!row) throw notFound(req.params.id);
      return view(row);
    },
  );

  app.patch(
    '/tokens/:id',
    {
      schema: { tags, summary: 'Rename a token, or change its budget, RPM limit or scopes (endpoints, networks, expiry, caps)', params: IdParams, body: PatchBody, response: withErrors({ 200: RefTo(TokenObject) }) },
    },
    async (req) => {
      const row = await ctx.database.db.transaction().execute(async (trx) => {
        const { endpoints: _e, networks: _n, expires_at: _x, caps: _c, ...limits } = req.body;
        const changed = await ctx.tokensRepo.update(req.params.id, { ...limits, ...scopeColumns(req.body) }, trx);
        if (changed) await ctx.audit.record(req, trx, 'tokens.update', { id: changed.id, ...req.body });
        return changed;
      });
      if (!row) {
        const existing = await ctx.tokensRepo.getById(req.params.id);
        if (existing?.revoked_at) throw new ApiError(409, 'token_revoked', `client token ${req.params.id} was revoked on ${existing.revoked_at}; a revoked token cannot be changed`);
        throw notFound(req.params.id);
      }
      await ctx.tokensChanged();
      return view(row);
    },
  );

  app.delete(
    '/tokens/:id',
    { schema: { tags, summary: 'Revoke a token (its log rows stay)', params: IdParams, response: withErrors({ 200: RefTo(TokenObject) }) } },
    async (req) => {
      const row = await ctx.database.db.transaction().execute(async (trx) => {
        const revoked = await ctx.tokensRepo.revoke(req.params.id, trx);
        if (!revoked) throw notFound(req.params.id);
        await ctx.audit.record(req, trx, 'tokens.revoke', { id: revoked.id, name: revoked.name });
        return revoked;
      });
      await ctx.tokensChanged();
      req.log.info({ token_id: row.id }, 'client token revoked');
      return view(row);
    },
  );
};

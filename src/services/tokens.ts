import type { Static } from '@sinclair/typebox';
import type { Actor, AuditLog } from '../audit/audit.js';
import type { ChangeFeed } from '../cluster/changes.js';
import { generateToken } from '../crypto.js';
import type { Db } from '../db/database.js';
import type { TokenRepository, TokenScopeColumns } from '../db/repositories/tokens.js';
import type { TokenRow } from '../db/schema.js';
import type { BudgetLedger } from '../gateway/budget.js';
import { type TokenRegistry, hashToken, scopesOfRow, tokenPrefix } from '../gateway/tokens.js';
import { ApiError } from '../http/api-error.js';
import { parseCidr } from '../net.js';
import type { CreateBody, PatchBody, RequestCaps, ScopeEndpoint, TokenObject } from '../schemas/tokens.js';

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

const notFound = (id: number) => new ApiError(404, 'token_not_found', `no client token with id ${id}`);

/**
 * Client tokens: made (the token shown once, stored hashed), changed and revoked, each in one
 * transaction with its audit row; the gateway (here and on the other instances) reads them again
 * once it commits. Views carry this month's spend as the gateway counts it right now.
 */
export class TokenService {
  constructor(
    private readonly d: {
      db: Db;
      repo: TokenRepository;
      registry: TokenRegistry;
      budget: BudgetLedger;
      audit: AuditLog;
      changes: ChangeFeed;
    },
  ) {}

  async create(actor: Actor, body: Static<typeof CreateBody>): Promise<{ token: string; item: TokenObject }> {
    const token = generateToken('tp_');
    const row = await this.d.db.transaction().execute(async (trx) => {
      const made = await this.d.repo.create(
        {
          name: body.name,
          token_hash: hashToken(token).toString('hex'),
          token_prefix: tokenPrefix(token),
          monthly_budget: body.monthly_budget ?? null,
          rpm_limit: body.rpm_limit ?? null,
          cache_ttl_s: body.cache_ttl_s ?? null,
          ...scopeColumns(body),
        },
        trx,
      );
      await this.d.audit.record(actor, trx, 'tokens.create', { id: made.id, name: made.name, monthly_budget: made.monthly_budget, rpm_limit: made.rpm_limit, cache_ttl_s: made.cache_ttl_s });
      return made;
    });
    await this.d.changes.tokens();
    return { token, item: this.view(row) };
  }

  async list(includeRevoked: boolean): Promise<TokenObject[]> {
    return (await this.d.repo.list(includeRevoked)).map((r) => this.view(r));
  }

  async get(id: number): Promise<TokenObject> {
    const row = await this.d.repo.getById(id);
    if (!row) throw notFound(id);
    return this.view(row);
  }

  /** Renames a token, or changes its budget, RPM limit or scopes; a revoked token cannot change (409). */
  async update(actor: Actor, id: number, body: Static<typeof PatchBody>): Promise<TokenObject> {
    const row = await this.d.db.transaction().execute(async (trx) => {
      const { endpoints: _e, networks: _n, expires_at: _x, caps: _c, ...limits } = body;
      const changed = await this.d.repo.update(id, { ...limits, ...scopeColumns(body) }, trx);
      if (changed) await this.d.audit.record(actor, trx, 'tokens.update', { id: changed.id, ...body });
      return changed;
    });
    if (!row) {
      const existing = await this.d.repo.getById(id);
      if (existing?.revoked_at) throw new ApiError(409, 'token_revoked', `client token ${id} was revoked on ${existing.revoked_at}; a revoked token cannot be changed`);
      throw notFound(id);
    }
    await this.d.changes.tokens();
    return this.view(row);
  }

  /** Revokes a token; its log rows stay. Revoking it again is a 409 and writes nothing. */
  async revoke(actor: Actor, id: number): Promise<TokenObject> {
    const row = await this.d.db.transaction().execute(async (trx) => {
      const revoked = await this.d.repo.revoke(id, trx);
      if (!revoked) {
        const existing = await this.d.repo.getById(id, trx);
        if (existing?.revoked_at) throw new ApiError(409, 'token_revoked', `client token ${id} was revoked already, on ${existing.revoked_at}`);
        throw notFound(id);
      }
      await this.d.audit.record(actor, trx, 'tokens.revoke', { id: revoked.id, name: revoked.name });
      return revoked;
    });
    await this.d.changes.tokens();
    return this.view(row);
  }

  /** The row, with this month's spend as the gateway counts it right now. */
  view(r: TokenRow): TokenObject {
    const live = this.d.registry.byId(r.id);
    const scopes = scopesOfRow(r);
    return {
      id: r.id,
      name: r.name,
      token_prefix: r.token_prefix,
      monthly_budget: r.monthly_budget,
      rpm_limit: r.rpm_limit,
      month: live?.month ?? r.spent_month,
      month_spent: live?.spent ?? r.month_spent,
      month_held: live ? this.d.budget.held(r.id) : 0,
      revoked_at: r.revoked_at,
      last_used_at: r.last_used_at,
      endpoints: scopes.endpoints,
      networks: scopes.networks,
      expires_at: scopes.expiresAt,
      caps: scopes.caps,
      cache_ttl_s: r.cache_ttl_s,
      created_at: r.created_at,
      updated_at: r.updated_at,
    };
  }
}

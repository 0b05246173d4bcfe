import { type Kysely, sql } from 'kysely';
import type { DialectKind } from '../dialect.js';
import { jsonRows } from '../json-rows.js';
import type { Database, TokenRow } from '../schema.js';

export type Executor = Kysely<Database>;

/** A token's scopes as stored: JSON text, or null for no limit of that kind. */
export interface TokenScopeColumns {
  endpoints?: string | null;
  networks?: string | null;
  expires_at?: string | null;
  caps?: string | null;
}

export interface NewToken extends TokenScopeColumns {
  name: string;
  token_hash: string;
  token_prefix: string;
  monthly_budget: number | null;
  rpm_limit: number | null;
  cache_ttl_s?: number | null;
}

export interface TokenPatch extends TokenScopeColumns {
  name?: string;
  monthly_budget?: number | null;
  rpm_limit?: number | null;
  cache_ttl_s?: number | null;
}

/** The current UTC month, `YYYY-MM`: budgets and spend reset when it changes. */
export function utcMonth(at = new Date()): string {
  return at.toISOString().slice(0, 7);
}

export class TokenRepository {
  constructor(
    private readonly db: Executor,
    private readonly dialect: DialectKind,
  ) {}

  /** Tokens' spend since the outbox's last flush, by month: a new month starts the count again; an older one is not counted. */
  async applySpend(rows: readonly { id: number; month: string; credits: number; lastUsed: string }[], ex: Executor): Promise<void> {
    if (rows.length === 0) return;
    const cols = [['id', 'integer'], ['month', 'text'], ['credits', 'double precision'], ['last_used', 'text']] as const;
    await sql`
      update client_tokens set
        month_spent = case when spent_month = v.month then month_spent + v.credits else v.credits end,
        spent_month = v.month,
        last_used_at = v.last_used
      from ${jsonRows(this.dialect, cols, rows.map((t) => [t.id, t.month, t.credits, t.lastUsed]))}
      where client_tokens.id = v.id and v.month >= client_tokens.spent_month`.execute(ex);
  }

  /** PostgreSQL: locks these tokens' rows by id. */
  async lockInOrder(ids: readonly number[], ex: Executor): Promise<void> {
    if (ids.length > 0) await sql`select id from client_tokens where id = any(cast(${ids} as integer[])) order by id for update`.execute(ex);
  }

  async create(t: NewToken, ex: Executor = this.db): Promise<TokenRow> {
    const now = new Date().toISOString();
    return ex
      .insertInto('client_tokens')
      .values({ ...t, spent_month: utcMonth(), month_spent: 0, created_at: now, updated_at: now })
      .returningAll()
      .executeTakeFirstOrThrow();
  }

  async list(includeRevoked: boolean, ex: Executor = this.db): Promise<TokenRow[]> {
    let q = ex.selectFrom('client_tokens').selectAll().orderBy('id');
    if (!includeRevoked) q = q.where('revoked_at', 'is', null);
    return q.execute();
  }

  async getById(id: number, ex: Executor = this.db): Promise<TokenRow | undefined> {
    return ex.selectFrom('client_tokens').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /** Changes a token that is not revoked (undefined when there is none). */
  async update(id: number, patch: TokenPatch, ex: Executor = this.db): Promise<TokenRow | undefined> {
    return ex
      .updateTable('client_tokens')
      .set({ ...patch, updated_at: new Date().toISOString() })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .returningAll()
      .executeTakeFirst();
  }

  /**
   * Revokes a token that is not revoked yet (keeps the row: the request log refers to it).
   * Undefined when no token is revoked by this call: none with this id, or revoked already.
   */
  async revoke(id: number, ex: Executor = this.db): Promise<TokenRow | undefined> {
    const now = new Date().toISOString();
    return ex
      .updateTable('client_tokens')
      .set({ revoked_at: now, updated_at: now })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .returningAll()
      .executeTakeFirst();
  }
}

import { utcMonth } from '../../src/db/repositories/tokens.js';
import type { TokenRow } from '../../src/db/schema.js';
import { TokenRegistry } from '../../src/gateway/tokens.js';

/** A client token's row as the registry loads it: this month, with a budget (or none) and what it spent. */
export function tokenRow(id: number, budget: number | null, spent = 0): TokenRow {
  const now = new Date().toISOString();
  return {
    id,
    name: `t${id}`,
    token_hash: String(id).padStart(64, '0'),
    token_prefix: 'tp_x',
    monthly_budget: budget,
    rpm_limit: null,
    spent_month: utcMonth(new Date()),
    month_spent: spent,
    revoked_at: null,
    last_used_at: null,
    endpoints: null,
    networks: null,
    expires_at: null,
    caps: null,
    cache_ttl_s: null,
    created_at: now,
    updated_at: now,
  };
}

/** A token registry holding these rows. */
export function registry(...rows: TokenRow[]): TokenRegistry {
  const r = new TokenRegistry();
  r.load(rows);
  return r;
}

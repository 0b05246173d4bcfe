import type { AccountListRow } from '../db/repositories/accounts.js';
import { type KeyListRow, apiStatus } from '../db/repositories/keys.js';
import type { KeyRow } from '../db/schema.js';
import { driftOf } from '../db/figures.js';
import { effectiveRemaining, leastKnown } from '../pool/pool.js';
import type { AccountObject, KeyObject } from '../schemas/keys.js';

/** The key's rest, while it lasts: until when, and why. */
function resting(row: KeyRow): Pick<KeyObject, 'cooldown_until' | 'cooldown_reason'> {
  const now = row.cooldown_until !== null && Date.parse(row.cooldown_until) > Date.now();
  return { cooldown_until: now ? row.cooldown_until : null, cooldown_reason: now ? row.cooldown_reason : null };
}

/** A key as the admin API shows it. */
export function keyView(row: KeyListRow): KeyObject {
  return {
    id: row.id,
    label: row.label,
    key_masked: row.key_masked,
    status: apiStatus(row),
    // What the key can spend: its own figure, capped by its account's shared room.
    remaining_quota: effectiveRemaining({ remaining: row.remaining_quota, account: row.account_id === null ? null : { remaining: row.account_remaining } }),
    key_usage: row.key_usage,
    key_limit: row.key_limit,
    plan: row.plan,
    plan_usage: row.plan_usage,
    plan_limit: row.plan_limit,
    paygo_usage: row.paygo_usage,
    paygo_limit: row.paygo_limit,
    last_refreshed_at: row.last_refreshed_at,
    last_checked_at: row.last_checked_at,
    last_error: row.last_error,
    last_used_at: row.last_used_at,
    ...resting(row),
    account_id: row.account_id,
    account_name: row.account_name,
    cycle_started_at: row.cycle_started_at,
    drift: driftOf(row),
    created_at: row.created_at,
    updated_at: row.updated_at,
  };
}

/** An account as the admin API shows it. */
export function accountView(row: AccountListRow): AccountObject {
  // Counted once: the least of the account's room and what its keys' own figures add up to.
  const remaining = leastKnown(row.remaining, row.keys_remaining);
  return {
    id: row.id,
    name: row.name,
    keys: { total: row.keys, active: row.active, exhausted: row.exhausted, invalid: row.invalid, disabled: row.disabled },
    remaining: row.keys - row.invalid - row.disabled > 0 ? remaining : 0,
    plan: row.plan,
    plan_usage: row.plan_usage,
    plan_limit: row.plan_limit,
    paygo_usage: row.paygo_usage,
    paygo_limit: row.paygo_limit,
    spent_7d: row.spent_7d,
    last_refreshed_at: row.last_refreshed_at,
    cycle_started_at: row.cycle_started_at,
    drift: driftOf(row),
    created_at: row.created_at,
  };
}

import { type RawBuilder, sql } from 'kysely';
import type { ColumnSpec } from './json-rows.js';
import type { DriftColumns } from './schema.js';

/**
 * Columns keys and accounts both carry, listed once: the account figures of a /usage answer,
 * and a usage-drift finding. Their SQL types travel with them into the set-based writes.
 */

/** An account's figures as /usage reports them (stored on each key, and on its account). */
export const PLAN_COLUMNS = [
  ['plan', 'text'],
  ['plan_usage', 'double precision'],
  ['plan_limit', 'double precision'],
  ['paygo_usage', 'double precision'],
  ['paygo_limit', 'double precision'],
] as const satisfies readonly ColumnSpec[];

/** Usage nobody here spent: Tavily counted `tavily` credits between `since` and `at`; `pool` went through the pool. */
export interface Drift {
  tavily: number;
  pool: number;
  since: string;
  at: string;
}

export const DRIFT_COLUMNS = [
  ['drift_tavily', 'double precision'],
  ['drift_pool', 'double precision'],
  ['drift_since', 'text'],
  ['drift_at', 'text'],
] as const satisfies readonly ColumnSpec[];

/** The values that dismiss a finding. */
export const NO_DRIFT = { drift_tavily: null, drift_pool: null, drift_since: null, drift_at: null } as const;

/** A finding as the values of DRIFT_COLUMNS (all null: none). */
export function driftValues(d: Drift | null): [number | null, number | null, string | null, string | null] {
  return d ? [d.tavily, d.pool, d.since, d.at] : [null, null, null, null];
}

/** A stored finding, or null. */
export function driftOf(row: DriftColumns): Drift | null {
  if (row.drift_at === null || row.drift_tavily === null || row.drift_pool === null || row.drift_since === null) return null;
  return { tavily: row.drift_tavily, pool: row.drift_pool, since: row.drift_since, at: row.drift_at };
}

/**
 * `drift_… = …` for an `UPDATE … FROM v`: a new finding in `v` replaces the stored one; none
 * (v.drift_at null) keeps it until an admin dismisses it.
 */
export function keepOrSetDrift(table: 'tavily_keys' | 'tavily_accounts'): RawBuilder<unknown> {
  return sql.join(
    DRIFT_COLUMNS.map(([c]) => sql`${sql.ref(c)} = case when v.drift_at is null then ${sql.ref(`${table}.${c}`)} else ${sql.ref(`v.${c}`)} end`),
  );
}

/**
 * Of two /usage readings of one account, whether `a` is the later: read later, or (read at the
 * same moment) showing more usage, which only grows within a cycle.
 */
export function laterReading(a: { at: string; usage: number | null }, b: { at: string; usage: number | null } | undefined): boolean {
  return !b || a.at > b.at || (a.at === b.at && (a.usage ?? 0) > (b.usage ?? 0));
}

/**
 * What an account can still spend, counted once for all its keys: plan room plus
 * pay-as-you-go room. Null when the plan has no limit to count from.
 */
export function accountRoom(a: { plan_usage: number | null; plan_limit: number | null; paygo_usage: number | null; paygo_limit: number | null }): number | null {
  if (a.plan_limit === null) return null;
  return Math.max(0, a.plan_limit - (a.plan_usage ?? 0)) + (a.paygo_limit !== null ? Math.max(0, a.paygo_limit - (a.paygo_usage ?? 0)) : 0);
}

/** Credits the account has used in its cycle, plan and pay-as-you-go together (null when unknown). */
export function accountUsage(a: { plan_usage: number | null; paygo_usage: number | null }): number | null {
  return a.plan_usage === null ? null : a.plan_usage + (a.paygo_usage ?? 0);
}

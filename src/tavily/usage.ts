import type { KeyFigures } from '../db/repositories/keys.js';
import { accountRoom } from '../db/figures.js';

const ENDPOINTS = ['search_usage', 'extract_usage', 'crawl_usage', 'map_usage', 'research_usage'] as const;
type EndpointCounts = Partial<Record<(typeof ENDPOINTS)[number], number>>;

/** Tavily's GET /usage answer, checked. */
export interface UsageReport {
  key: { usage: number; limit: number | null } & EndpointCounts;
  account: {
    current_plan: string | null;
    plan_usage: number | null;
    plan_limit: number | null;
    paygo_usage: number | null;
    paygo_limit: number | null;
  } & EndpointCounts;
}

/** Far above any plan Tavily sells (the largest has 100,000 credits a month), far below 2^53. */
const MAX_FIGURE = 1e12;

export class UsageShapeError extends Error {
  override name = 'UsageShapeError';
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function num(obj: Record<string, unknown>, field: string, where: string, required: boolean): number | null {
  const v = obj[field];
  if (v === undefined || v === null) {
    if (required) throw new UsageShapeError(`${where}.${field} is missing`);
    return null;
  }
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new UsageShapeError(`${where}.${field} is not a number`);
  // Credits are counts: a negative or astronomical figure is not Tavily's, and would turn
  // into credits the pool does not have.
  if (v < 0 || v > MAX_FIGURE) throw new UsageShapeError(`${where}.${field} is out of range (${v})`);
  return v;
}

function counts(obj: Record<string, unknown>, where: string): EndpointCounts {
  const out: EndpointCounts = {};
  for (const f of ENDPOINTS) {
    const v = num(obj, f, where, false);
    if (v !== null) out[f] = v;
  }
  return out;
}

export function parseUsage(body: unknown): UsageReport {
  if (!isObject(body)) throw new UsageShapeError('body is not a JSON object');
  const key = body.key;
  if (!isObject(key)) throw new UsageShapeError('key is missing');
  const account = isObject(body.account) ? body.account : {};
  const plan = account.current_plan;
  return {
    key: { usage: num(key, 'usage', 'key', true)!, limit: num(key, 'limit', 'key', false), ...counts(key, 'key') },
    account: {
      current_plan: typeof plan === 'string' ? plan : null,
      plan_usage: num(account, 'plan_usage', 'account', false),
      plan_limit: num(account, 'plan_limit', 'account', false),
      paygo_usage: num(account, 'paygo_usage', 'account', false),
      paygo_limit: num(account, 'paygo_limit', 'account', false),
      ...counts(account, 'account'),
    },
  };
}

/**
 * What a key can still spend: its own `limit − usage` where it has a limit, capped by
 * what its account has left — plan room plus pay-as-you-go room. Null when no limit applies.
 */
export function remainingCredits(r: UsageReport): number | null {
  const keyRoom = r.key.limit !== null ? r.key.limit - r.key.usage : null;
  const room = accountRoom(r.account);
  if (keyRoom === null && room === null) return null;
  return Math.max(0, Math.min(keyRoom ?? Number.POSITIVE_INFINITY, room ?? Number.POSITIVE_INFINITY));
}

/** The figures stored for a key from a /usage answer read at `readAt`. */
export function figuresFromUsage(r: UsageReport, readAt: string): KeyFigures {
  const remaining = remainingCredits(r);
  const pick = (c: EndpointCounts) => Object.fromEntries(ENDPOINTS.filter((f) => c[f] !== undefined).map((f) => [f, c[f]]));
  return {
    status: remaining !== null && remaining <= 0 ? 'exhausted' : 'active',
    key_usage: r.key.usage,
    key_limit: r.key.limit,
    plan: r.account.current_plan,
    plan_usage: r.account.plan_usage,
    plan_limit: r.account.plan_limit,
    paygo_usage: r.account.paygo_usage,
    paygo_limit: r.account.paygo_limit,
    endpoint_usage: JSON.stringify({ key: pick(r.key), account: pick(r.account) }),
    remaining_quota: remaining,
    usage_read_at: readAt,
  };
}

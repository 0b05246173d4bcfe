/** The admin API, the dashboard's only source of truth. */
const TOKEN_KEY = 'tavily-pool-admin-token';

export function getToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}
export function setToken(token: string | null): void {
  if (token === null) sessionStorage.removeItem(TOKEN_KEY);
  else sessionStorage.setItem(TOKEN_KEY, token);
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Called when the API refuses the token, so that the app returns to sign-in. */
let onUnauthorized: () => void = () => {};
export function handleUnauthorized(fn: () => void): void {
  onUnauthorized = fn;
}

export async function api<T>(path: string, opts: { method?: string; json?: unknown; text?: string; token?: string } = {}): Promise<T> {
  const headers: Record<string, string> = { authorization: `Bearer ${opts.token ?? getToken() ?? ''}` };
  let body: string | undefined;
  if (opts.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(opts.json);
  } else if (opts.text !== undefined) {
    headers['content-type'] = 'text/plain';
    body = opts.text;
  }
  const res = await fetch(`/api/v1/admin${path}`, { method: opts.method ?? (body ? 'POST' : 'GET'), headers, body });
  if (res.status === 204) return undefined as T;
  const data = (await res.json().catch(() => null)) as { error?: { code: string; message: string } } | null;
  if (!res.ok) {
    const err = new ApiError(res.status, data?.error?.code ?? 'error', data?.error?.message ?? `request failed (${res.status})`);
    if (res.status === 401 && !opts.token) onUnauthorized();
    throw err;
  }
  return data as T;
}

// The API's own types, shared with the server (type-only imports: nothing of the server is bundled).
import type { AccountObject as Account, KeyObject as Key, Suggestion } from '../../src/admin/schemas';
export type { Account, Key, Suggestion };
export type { AlertRules, EventView, RulesView, SinkView, TestResultView } from '../../src/alerts/schemas';
export type { AuditView } from '../../src/audit/schemas';
export type { LogRow } from '../../src/db/schema';

export interface Summary {
  keys: { total: number; by_status: Record<Key['status'], number> };
  total_remaining: number;
  total_limit: number;
  unknown_quota: number;
  accounts: number;
  last_refreshed_at: string | null;
  refresh: { running: boolean; last: RefreshResult | null };
}

export interface AccountList {
  items: Account[];
  next_cursor: string | null;
  total: number;
}

/** The day credits run out at a 7-day burn rate, or null when nothing was spent. */
export function runsDry(remaining: number, spent7d: number, now = Date.now()): Date | null {
  if (spent7d <= 0) return null;
  return new Date(now + (remaining / (spent7d / 7)) * 24 * 3600_000);
}

export interface RefreshResult {
  total: number;
  success_count: number;
  failed_count: number;
  duration_ms: number;
  finished_at: string;
  failures: { id: number; key_masked: string; error: string; status_code: number | null }[];
}

export interface RefreshStatus {
  progress: { running: boolean; total: number; done: number; failed: number; started_at: string | null };
  last: RefreshResult | null;
}

export interface ImportResult {
  added: number;
  accounts: number;
  duplicates: number;
  rejected: { input: string; reason: string }[];
  rejected_count: number;
}

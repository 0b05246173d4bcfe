/** The admin API, the dashboard's only source of truth. */
import type { Static } from '@sinclair/typebox';
import type { InstanceListResponse, LogListResponse, StatsResponse } from '../../src/schemas/logs';
import type {
  AccountDetail,
  AccountListResponse,
  AccountObject,
  BulkBody,
  ImportResponse,
  KeyDetail as KeyDetailSchema,
  KeyObject,
  ListResponse,
  PatchBody,
  RefreshResponse,
  RefreshStatusResponse,
  SuggestionsResponse,
  SummaryResponse,
} from '../../src/schemas/keys';
import type { CreateBody as TokenCreateBody, PatchBody as TokenPatchBody, TokenCreatedResponse, TokenListResponse, TokenObject } from '../../src/schemas/tokens';
import type { CreateSink, EventObject, PatchSink, RulesResponse, SinkObject, TestResult } from '../../src/schemas/alerts';
import type { AuditObject } from '../../src/schemas/audit';

// The API's own types, derived from the server's schemas (type-only imports: nothing of the
// server is bundled). A field renamed on the server breaks this build.
export type Key = Static<typeof KeyObject>;
export type KeyList = Static<typeof ListResponse>;
export type KeyDetail = Static<typeof KeyDetailSchema>;
export type ImportResult = Static<typeof ImportResponse>;
export type RefreshResult = Static<typeof RefreshResponse>;
export type RefreshStatus = Static<typeof RefreshStatusResponse>;
export type Summary = Static<typeof SummaryResponse>;
export type Account = Static<typeof AccountObject>;
export type AccountList = Static<typeof AccountListResponse>;
export type AccountWithKeys = Static<typeof AccountDetail>;
export type Suggestion = Static<typeof SuggestionsResponse>['items'][number];
export type Token = Static<typeof TokenObject>;
export type TokenList = Static<typeof TokenListResponse>;
export type TokenCreated = Static<typeof TokenCreatedResponse>;
export type LogList = Static<typeof LogListResponse>;
export type LogRow = LogList['items'][number];
export type Stats = Static<typeof StatsResponse>;
export type Instances = Static<typeof InstanceListResponse>;
export type Sink = Static<typeof SinkObject>;
export type AlertEvent = Static<typeof EventObject>;
export type Rules = Static<typeof RulesResponse>;
export type AlertRules = Rules['rules'];
export type TestResultView = Static<typeof TestResult>;
export type AuditRow = Static<typeof AuditObject>;
// What the dashboard sends: the server's request schemas too.
export type KeyPatch = Static<typeof PatchBody>;
export type BulkChange = Static<typeof BulkBody>;
export type TokenCreate = Static<typeof TokenCreateBody>;
export type TokenPatch = Static<typeof TokenPatchBody>;
export type SinkCreate = Static<typeof CreateSink>;
export type SinkPatch = Static<typeof PatchSink>;

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

export async function api<T>(path: string, opts: { method?: string; json?: unknown; text?: string; token?: string; signal?: AbortSignal } = {}): Promise<T> {
  const headers: Record<string, string> = { authorization: `Bearer ${opts.token ?? getToken() ?? ''}` };
  let body: string | undefined;
  if (opts.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(opts.json);
  } else if (opts.text !== undefined) {
    headers['content-type'] = 'text/plain';
    body = opts.text;
  }
  const res = await fetch(`/api/v1/admin${path}`, { method: opts.method ?? (body ? 'POST' : 'GET'), headers, body, signal: opts.signal });
  if (res.status === 204) return undefined as T;
  const data = (await res.json().catch(() => null)) as { error?: { code: string; message: string } } | null;
  if (!res.ok) {
    const err = new ApiError(res.status, data?.error?.code ?? 'error', data?.error?.message ?? `request failed (${res.status})`);
    if (res.status === 401 && !opts.token) onUnauthorized();
    throw err;
  }
  return data as T;
}

// When credits run out: the server's own burn-rate rule (the alerts' days-left is the same).
export { perDay, runsDry } from '../../src/forecast';
// When an account's credits renew: a month after the cycle start seen, or the 1st (UTC) when none was.
export { cycleStart, nextReset } from '../../src/cycles';

/** A query string from the set values (empty strings, null and undefined left out). */
export function qs(params: Record<string, string | number | boolean | null | undefined>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== '' && v !== null && v !== undefined) p.set(k, String(v));
  return p.toString();
}

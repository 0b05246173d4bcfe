import type { Generated, Insertable, Selectable, Updateable } from 'kysely';

/** Health of a key as Tavily last reported it; `disabled` is an admin decision kept apart in disabled_at. */
export type KeyHealth = 'active' | 'invalid' | 'exhausted';
/** The status the API shows: the admin's `disabled` wins over health. */
export type KeyStatus = KeyHealth | 'disabled';
export const KEY_STATUSES: readonly KeyStatus[] = ['active', 'disabled', 'invalid', 'exhausted'];

/** An account's figures as /usage reports them: on each key, and on its declared account. */
export interface PlanFigureColumns {
  plan: string | null;
  plan_usage: number | null;
  plan_limit: number | null;
  paygo_usage: number | null;
  paygo_limit: number | null;
}

/** Usage nobody here spent: what Tavily counted between two checks, and what the pool spent then. */
export interface DriftColumns {
  drift_tavily: number | null;
  drift_pool: number | null;
  drift_since: string | null;
  drift_at: string | null;
}

export interface TavilyKeyTable extends PlanFigureColumns, DriftColumns {
  id: Generated<number>;
  label: string | null;
  /** AES-256-GCM sealed key text (see crypto.ts). */
  key_ciphertext: string;
  /** HMAC of the key text, unique: de-duplication without decrypting. */
  key_hash: string;
  /** `tvly-dev-…a1b2`, the only form of the key the API shows. */
  key_masked: string;
  status: KeyHealth;
  disabled_at: string | null;
  key_usage: number | null;
  key_limit: number | null;
  /** JSON: {"key": {search_usage, …}, "account": {search_usage, …}} from /usage. */
  endpoint_usage: string | null;
  /** What the key can still spend; null until known (or when no limit applies). */
  remaining_quota: number | null;
  last_refreshed_at: string | null;
  /** The last check of the key's figures, whatever it answered (last_refreshed_at: the last that succeeded). */
  last_checked_at: string | null;
  /** ISO time until which the key rests (after a 429 from Tavily, or failures in a row); null when it never rested. */
  cooldown_until: string | null;
  /** Why it rests (or last rested). */
  cooldown_reason: string | null;
  last_error: string | null;
  last_used_at: string | null;
  /** The Tavily account the key belongs to (its credits are the account's); null: the key is its own account. */
  account_id: number | null;
  /** When Tavily answered the /usage call whose figures the row holds (the start of the next drift window). */
  usage_read_at: string | null;
  /** The check that first saw the key's usage fall: its billing cycle restarted then (or a little before). */
  cycle_started_at: string | null;
  created_at: string;
  updated_at: string;
}

/** A Tavily account: keys that share its plan's credits. */
export interface TavilyAccountTable extends PlanFigureColumns, DriftColumns {
  id: Generated<number>;
  name: string;
  /** What the account can still spend: plan room plus pay-as-you-go room, counted once; null while unknown. */
  remaining: number | null;
  usage_read_at: string | null;
  last_refreshed_at: string | null;
  cycle_started_at: string | null;
  created_at: string;
  updated_at: string;
}

export interface ClientTokenTable {
  id: Generated<number>;
  name: string;
  /** SHA-256 of the token: tokens are 256-bit random, so a plain hash cannot be reversed. */
  token_hash: string;
  /** `tp_AbCd…`: enough to recognise a token, never enough to use it. */
  token_prefix: string;
  /** Credits a UTC month; null: no budget. */
  monthly_budget: number | null;
  /** Requests a minute; null: no limit. */
  rpm_limit: number | null;
  /** The UTC month (`YYYY-MM`) month_spent counts. */
  spent_month: string;
  month_spent: number;
  revoked_at: string | null;
  last_used_at: string | null;
  /** JSON array of the endpoints it may use; null: all. */
  endpoints: string | null;
  /** JSON array of the networks (CIDR) it may be used from; null: any. */
  networks: string | null;
  /** After this it is refused; null: never. */
  expires_at: string | null;
  /** JSON: caps on what one request may cost; null: none. */
  caps: string | null;
  /** Seconds an identical request's answer may be reused (0: never); null: the door's default (REST none, MCP MCP_CACHE_TTL_S). */
  cache_ttl_s: number | null;
  created_at: string;
  updated_at: string;
}

export interface RequestLogTable {
  id: Generated<number>;
  ts: string;
  token_id: number | null;
  key_id: number | null;
  endpoint: string;
  status: number;
  attempts: number;
  latency_ms: number | null;
  credits: number;
  request_id: string | null;
  error: string | null;
  /** How many requests the row stands for: 1, or how many refusals an aggregated row counts. */
  requests: Generated<number>;
  /** The door the request came through. */
  via: Generated<Door>;
  /** JSON: the keys tried that did not serve the request, `[{key_id, status, error}]`; null when the first one did. */
  failovers: string | null;
  /** The answer cache: `hit` (a stored answer), `joined` (an identical request's answer, in flight), `miss` (Tavily called, the answer stored), `bypass` (the client asked for Tavily); null: no cache for this token. */
  cache: CacheOutcome | null;
  /** Credits a cached or joined answer saved: what Tavily charged for it. */
  credits_saved: Generated<number>;
}

export type CacheOutcome = 'hit' | 'joined' | 'miss' | 'bypass';

/** A research task belongs to the key that created it. */
export interface ResearchTaskTable {
  request_id: string;
  key_id: number;
  token_id: number | null;
  created_at: string;
  expires_at: string;
  charged_at: string | null;
}

/** The gateway's doors: Tavily's REST routes, and the MCP endpoint. */
export type Door = 'rest' | 'mcp';

export interface Database {
  tavily_accounts: TavilyAccountTable;
  tavily_keys: TavilyKeyTable;
  client_tokens: ClientTokenTable;
  request_logs: RequestLogTable;
  research_tasks: ResearchTaskTable;
  settings: SettingTable;
  alert_sinks: AlertSinkTable;
  alert_events: AlertEventTable;
  alert_deliveries: AlertDeliveryTable;
  alert_active: AlertActiveTable;
  audit_log: AuditLogTable;
}

/** One admin change (or a refused sign-in), as the audit log keeps it. */
export interface AuditLogTable {
  id: Generated<number>;
  at: string;
  action: string;
  /** JSON: what it was done to (ids, names, counts); never a key or a token. */
  targets: string | null;
  /** `ok`, or what went wrong (`refused` for a sign-in). */
  outcome: string;
  remote_addr: string | null;
  user_agent: string | null;
}

export type SinkKind = 'webhook' | 'slack' | 'telegram';
export type DeliveryState = 'pending' | 'delivered' | 'failed';

/** Where alerts are sent. */
export interface AlertSinkTable {
  id: Generated<number>;
  name: string;
  kind: SinkKind;
  /** Sealed webhook URL (webhook, slack) or bot token (telegram). */
  target_ciphertext: string;
  target_masked: string;
  /** Sealed signing secret (webhook). */
  secret_ciphertext: string | null;
  /** Telegram: the chat the bot writes to. */
  chat_id: string | null;
  /** JSON array of event types; null: every type. */
  events: string | null;
  disabled_at: string | null;
  created_at: string;
  updated_at: string;
}

/** The outbox: one row per event, written with the change that caused it. */
export interface AlertEventTable {
  id: Generated<number>;
  type: string;
  created_at: string;
  summary: string;
  /** JSON: what the event is about (keys, figures, thresholds). */
  data: string;
}

export interface AlertDeliveryTable {
  id: Generated<number>;
  event_id: number;
  sink_id: number;
  state: DeliveryState;
  attempts: Generated<number>;
  /** When the next attempt is due (or, while one runs, when its claim lapses). */
  next_at: string;
  last_status: number | null;
  last_error: string | null;
  delivered_at: string | null;
  created_at: string;
}

export interface AlertActiveTable {
  name: string;
  since: string;
}

export interface SettingTable {
  name: string;
  value: string;
}

export type TokenRow = Selectable<ClientTokenTable>;
export type LogRow = Selectable<RequestLogTable>;
export type NewLogRow = Insertable<RequestLogTable>;

export type KeyRow = Selectable<TavilyKeyTable>;
export type AccountRow = Selectable<TavilyAccountTable>;
export type NewKeyRow = Insertable<TavilyKeyTable>;
export type KeyUpdate = Updateable<TavilyKeyTable>;

import { type Static, type TNull, type TSchema, type TUnion, type TUnsafe, Type } from '@sinclair/typebox';
import { KEY_STATUSES, type KeyStatus } from '../db/schema.js';

export const ErrorBody = Type.Object(
  { error: Type.Object({ code: Type.String(), message: Type.String() }) },
  { $id: 'AdminError', description: 'Every admin error has this shape.' },
);

/**
 * A reference to a shared schema (one of those `plugins/openapi.ts` adds) that keeps its type: a plain
 * `Type.Ref('Name')` is `unknown` to TypeScript, which left handlers' answers and the dashboard's types
 * unchecked. The OpenAPI document still shows a `$ref` to the component.
 */
/** Tavily's error envelope, which the gateway's routes answer with, so that SDKs show the message. */
export const TavilyError = Type.Object({ detail: Type.Object({ error: Type.String() }) }, { $id: 'TavilyError' });

export function RefTo<T extends TSchema & { $id?: string }>(schema: T): TUnsafe<Static<T>> {
  if (!schema.$id) throw new Error('RefTo needs a schema with an $id');
  return Type.Unsafe<Static<T>>(Type.Ref(schema.$id));
}

/** Response schemas for the errors any admin route may answer. */
export function withErrors<T extends Record<number, TSchema>>(ok: T) {
  const err = RefTo(ErrorBody);
  return { ...ok, 400: err, 401: err, 404: err, 409: err, 413: err, 415: err, 500: err, 503: err };
}

/**
 * `T` or null. For a primitive type this is `type: [t, 'null']`, not `anyOf`: fast-json-stringify
 * serialises a type list directly, while an `anyOf` makes it compile and run a validator for
 * every value (a 1,000-key answer spent ~80 ms compiling it on first use).
 */
export function Nullable<T extends TSchema>(t: T): TUnsafe<Static<T> | null> | TUnion<[T, TNull]> {
  const type = (t as { type?: unknown }).type;
  if (typeof type === 'string' && ['string', 'number', 'integer', 'boolean'].includes(type)) {
    return Type.Unsafe<Static<T> | null>({ ...t, type: [type, 'null'] });
  }
  return Type.Union([t, Type.Null()]);
}

/** A string enum (not a union of literals): serialised and validated without a branch per value. */
export const KeyStatusSchema = Type.Unsafe<KeyStatus>({ type: 'string', enum: [...KEY_STATUSES] });

export const Drift = Type.Object(
  {
    tavily: Type.Number({ description: 'credits Tavily counted between the two checks' }),
    pool: Type.Number({ description: 'credits the pool spent through the key (or the account’s keys) between them' }),
    since: Type.String({ format: 'date-time' }),
    at: Type.String({ format: 'date-time' }),
  },
  { $id: 'UsageDrift', description: 'usage nobody here spent: the last time Tavily counted more than went through the pool' },
);

export const KeyObject = Type.Object(
  {
    id: Type.Integer(),
    label: Nullable(Type.String()),
    key_masked: Type.String({ description: 'e.g. tvly-dev-…a1b2; the key itself is never shown' }),
    status: KeyStatusSchema,
    remaining_quota: Nullable(Type.Number({ description: 'credits this key can still spend; null while unknown' })),
    key_usage: Nullable(Type.Number()),
    key_limit: Nullable(Type.Number()),
    plan: Nullable(Type.String()),
    plan_usage: Nullable(Type.Number()),
    plan_limit: Nullable(Type.Number()),
    paygo_usage: Nullable(Type.Number()),
    paygo_limit: Nullable(Type.Number()),
    last_refreshed_at: Nullable(Type.String({ format: 'date-time', description: 'the last check that read the key’s figures' })),
    last_checked_at: Nullable(Type.String({ format: 'date-time', description: 'the last check, whatever it answered (a 401 or a 429 too)' })),
    last_error: Nullable(Type.String()),
    last_used_at: Nullable(Type.String({ format: 'date-time' })),
    cooldown_until: Nullable(Type.String({ format: 'date-time', description: 'set while the key rests: after a 429 from Tavily, or after upstream failures in a row (5 s, doubling, up to 5 min)' })),
    cooldown_reason: Nullable(Type.String({ description: 'why the key rests, while it does' })),
    account_id: Nullable(Type.Integer({ description: 'the Tavily account whose credits the key shares; null: the key is its own account' })),
    account_name: Nullable(Type.String()),
    cycle_started_at: Nullable(Type.String({ format: 'date-time', description: 'the check that first saw the key’s usage fall: its billing cycle restarted by then' })),
    drift: Nullable(RefTo(Drift)),
    created_at: Type.String({ format: 'date-time' }),
    updated_at: Type.String({ format: 'date-time' }),
  },
  { $id: 'TavilyKey' },
);
export type KeyObject = Static<typeof KeyObject>;

const EndpointCounts = Type.Record(Type.String(), Type.Number());
export const KeyDetail = Type.Intersect([
  RefTo(KeyObject),
  Type.Object({
    endpoint_usage: Nullable(Type.Object({ key: EndpointCounts, account: EndpointCounts })),
  }),
]);

/** Row ids are 32-bit integers on both databases. */
export const MAX_ID = 2_147_483_647;
export const RowId = (description?: string) => Type.Integer({ minimum: 1, maximum: MAX_ID, ...(description ? { description } : {}) });
/** Ten years: the longest span any age or staleness option needs. */
export const MAX_SECONDS = 10 * 365 * 86_400;

export const KeyIdParams = Type.Object({ id: RowId() });

export const MAX_IMPORT_KEYS = 100_000;
export const AccountName = Type.String({ minLength: 1, maxLength: 200, pattern: '\\S', description: 'the account’s name (an e-mail address, say)' });
export const ImportJsonBody = Type.Object(
  {
    keys: Type.Array(
      Type.Union([
        Type.String({ maxLength: 1000 }),
        Type.Object(
          { key: Type.String({ maxLength: 1000 }), account: Type.Optional(AccountName), label: Type.Optional(Type.String({ maxLength: 200, description: 'this key’s label' })) },
          { additionalProperties: false },
        ),
      ]),
      { minItems: 1, maxItems: MAX_IMPORT_KEYS, description: 'keys, or {"key", "account", "label"} objects' },
    ),
    label: Type.Optional(Type.String({ maxLength: 200 })),
    account: Type.Optional({ ...AccountName, description: 'the account of every key that names none' }),
  },
  { additionalProperties: false },
);
export const ImportQuery = Type.Object(
  {
    validate: Type.Boolean({ default: false, description: 'check each new key against /usage and store its figures' }),
    label: Type.Optional(Type.String({ maxLength: 200, description: 'label for keys sent as text/plain' })),
    account: Type.Optional({ ...AccountName, description: 'account for keys sent as text whose line names none' }),
  },
  { additionalProperties: false },
);
export const ImportResponse = Type.Object({
  added: Type.Integer(),
  accounts: Type.Integer({ description: 'accounts the added keys were put in' }),
  duplicates: Type.Integer(),
  duplicate_inputs: Type.Array(Type.Object({ input: Type.String({ description: 'the key, masked' }), reason: Type.String() }), { description: 'the first 1,000 duplicates, and why each is one' }),
  rejected: Type.Array(Type.Object({ input: Type.String(), reason: Type.String() })),
  rejected_count: Type.Integer(),
  items: Type.Array(RefTo(KeyObject)),
  items_truncated: Type.Boolean({ description: 'items lists the first 1,000 added keys' }),
});

export const ListQuery = Type.Object(
  {
    status: Type.Optional(KeyStatusSchema),
    account_id: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_ID, description: 'keys of this account; 0: keys in no account' })),
    drift: Type.Optional(Type.Boolean({ description: 'only keys with usage nobody here spent' })),
    q: Type.Optional(Type.String({ maxLength: 200, description: 'search the label or the key’s last characters' })),
    sort: Type.Union([Type.Literal('created_at'), Type.Literal('remaining_quota')], { default: 'created_at' }),
    order: Type.Union([Type.Literal('asc'), Type.Literal('desc')], { default: 'desc' }),
    limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
    cursor: Type.Optional(Type.String({ maxLength: 500 })),
  },
  { additionalProperties: false },
);
export const ListResponse = Type.Object({
  items: Type.Array(RefTo(KeyObject)),
  next_cursor: Nullable(Type.String()),
  total: Type.Integer(),
});

export const PatchBody = Type.Object(
  {
    label: Type.Optional(Nullable(Type.String({ maxLength: 200 }))),
    enabled: Type.Optional(Type.Boolean()),
    account_id: Type.Optional(Nullable(RowId('the account the key joins; null: none'))),
    drift: Type.Optional(Type.Null({ description: 'null: dismiss the usage-drift finding' })),
  },
  { additionalProperties: false, minProperties: 1 },
);

export const BulkBody = Type.Object(
  {
    action: Type.Union([Type.Literal('enable'), Type.Literal('disable'), Type.Literal('delete'), Type.Literal('assign')]),
    ids: Type.Array(RowId(), { minItems: 1, maxItems: MAX_IMPORT_KEYS }),
    account_id: Type.Optional(Nullable(RowId('assign: the account the keys join (null: none)'))),
    account: Type.Optional({ ...AccountName, description: 'assign: the account the keys join, by name (made if new)' }),
  },
  { additionalProperties: false },
);
export const BulkResponse = Type.Object({
  action: Type.String(),
  affected: Type.Integer(),
  not_found: Type.Array(Type.Integer()),
});

export const ExportQuery = Type.Object({ status: Type.Optional(KeyStatusSchema) }, { additionalProperties: false });

export const RefreshBody = Type.Object(
  {
    ids: Type.Optional(Type.Array(RowId(), { minItems: 1, maxItems: 10_000 })),
    stale_after_s: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_SECONDS, description: 'only keys not refreshed in the last n seconds' })),
  },
  { additionalProperties: false },
);
export const RefreshResponse = Type.Object(
  {
    total: Type.Integer(),
    success_count: Type.Integer(),
    failed_count: Type.Integer(),
    duration_ms: Type.Number(),
    load_ms: Type.Number({ description: 'the one read' }),
    fetch_ms: Type.Number({ description: 'all /usage calls' }),
    write_ms: Type.Number({ description: 'the one write transaction' }),
    started_at: Type.String({ format: 'date-time' }),
    finished_at: Type.String({ format: 'date-time' }),
    failures: Type.Array(
      Type.Object({
        id: Type.Integer(),
        key_masked: Type.String(),
        error: Type.String(),
        status_code: Nullable(Type.Integer()),
      }),
    ),
    drift: Type.Array(
      Type.Object({
        id: Nullable(Type.Integer({ description: 'the key; null when the finding is a whole account’s' })),
        key_masked: Nullable(Type.String()),
        account_id: Nullable(Type.Integer()),
        tavily: Type.Number(),
        pool: Type.Number(),
        since: Type.String({ format: 'date-time' }),
        at: Type.String({ format: 'date-time' }),
      }),
      { description: 'keys and accounts where Tavily counted more than went through the pool (beyond USAGE_DRIFT_TOLERANCE)' },
    ),
    new_cycles: Type.Integer({ description: 'keys whose usage fell since their last check: a new billing cycle' }),
  },
  { $id: 'RefreshQuotaResponse' },
);

export const RefreshStatusResponse = Type.Object({
  progress: Type.Object({
    running: Type.Boolean(),
    total: Type.Integer({ description: 'keys in the current (or last) run' }),
    done: Type.Integer({ description: 'keys whose /usage call has finished' }),
    failed: Type.Integer(),
    started_at: Nullable(Type.String({ format: 'date-time' })),
  }),
  last: Nullable(RefTo(RefreshResponse)),
});

export const SummaryResponse = Type.Object({
  keys: Type.Object({
    total: Type.Integer(),
    by_status: Type.Object({
      active: Type.Integer(),
      disabled: Type.Integer(),
      invalid: Type.Integer(),
      exhausted: Type.Integer(),
    }),
  }),
  total_remaining: Type.Number({ description: 'credits left on enabled, valid keys, each account counted once' }),
  total_limit: Type.Number(),
  unknown_quota: Type.Integer({ description: 'enabled keys whose quota is not known yet' }),
  spent_7d: Type.Number({ description: 'credits spent through the pool in the last 7 days: the burn rate of the forecast and of the days-left alert' }),
  forecast: Type.Object(
    {
      per_day: Type.Number({ description: 'the burn rate: spent_7d over 7 days' }),
      runs_dry_at: Nullable(
        Type.String({
          format: 'date-time',
          description: 'when the pool runs out at that rate, counting the resets to come (each account’s credits renew at its cycle start, what was left lapsing; spent first where it lapses first); null: nothing spent, or it lasts beyond 400 days',
        }),
      ),
      runs_dry_without_resets_at: Nullable(Type.String({ format: 'date-time', description: 'when today’s credits alone run out at that rate' })),
      lapsing_7d_total: Type.Number({ description: 'credits left now in accounts whose cycle resets within 7 days: lost unless spent first' }),
      lapsing_7d: Type.Array(
        Type.Object({
          account_id: Nullable(Type.Integer({ description: 'the account; null: keys of their own, grouped by the day their cycle began' })),
          name: Nullable(Type.String()),
          keys: Type.Integer(),
          credits: Type.Number({ description: 'what is left now' }),
          lapses_at: Type.String({ format: 'date-time', description: 'the next reset' }),
          basis: Type.Unsafe<'cycle' | 'calendar'>({ type: 'string', enum: ['cycle', 'calendar'], description: 'cycle: a month after the cycle start the pool saw; calendar: no cycle start seen yet, the 1st of next month (UTC) assumed' }),
        }),
        { description: 'soonest first, at most 50' },
      ),
    },
    { description: 'the forecast, knowing the billing cycles' },
  ),
  accounts: Type.Integer({ description: 'declared accounts with usable keys' }),
  cache: Type.Object(
    {
      hits_7d: Type.Integer({ description: 'requests answered from the answer cache in the last 7 days' }),
      joined_7d: Type.Integer({ description: 'requests that shared an identical request’s answer in flight' }),
      saved_7d: Type.Number({ description: 'credits those answers would have cost' }),
    },
    { description: 'what the answer cache saved (tokens with cache_ttl_s, MCP calls)' },
  ),
  last_refreshed_at: Nullable(Type.String({ format: 'date-time' })),
  refresh: Type.Object({
    running: Type.Boolean(),
    last: Nullable(RefTo(RefreshResponse)),
  }),
});

export const AccountObject = Type.Object(
  {
    id: Type.Integer(),
    name: Type.String(),
    keys: Type.Object({
      total: Type.Integer(),
      active: Type.Integer(),
      exhausted: Type.Integer(),
      invalid: Type.Integer(),
      disabled: Type.Integer(),
    }),
    remaining: Nullable(Type.Number({ description: 'what the account’s usable keys can spend, counted once: the least of the account’s room and its keys’ own figures; null while unknown' })),
    plan: Nullable(Type.String()),
    plan_usage: Nullable(Type.Number()),
    plan_limit: Nullable(Type.Number()),
    paygo_usage: Nullable(Type.Number()),
    paygo_limit: Nullable(Type.Number()),
    spent_7d: Type.Number({ description: 'credits spent through the pool in the last 7 days' }),
    last_refreshed_at: Nullable(Type.String({ format: 'date-time' })),
    cycle_started_at: Nullable(Type.String({ format: 'date-time', description: 'the check that first saw the account’s usage fall: its billing cycle restarted by then' })),
    drift: Nullable(RefTo(Drift)),
    created_at: Type.String({ format: 'date-time' }),
  },
  { $id: 'TavilyAccount' },
);
export type AccountObject = Static<typeof AccountObject>;

export const AccountIdParams = Type.Object({ id: RowId() });
export const AccountListQuery = Type.Object(
  {
    q: Type.Optional(Type.String({ maxLength: 200, description: 'search the name' })),
    limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
    cursor: Type.Optional(Type.String({ maxLength: 50 })),
  },
  { additionalProperties: false },
);
export const AccountListResponse = Type.Object({
  items: Type.Array(RefTo(AccountObject)),
  next_cursor: Nullable(Type.String()),
  total: Type.Integer(),
});
export const AccountCreateBody = Type.Object(
  {
    name: AccountName,
    key_ids: Type.Optional(Type.Array(RowId(), { maxItems: MAX_IMPORT_KEYS, description: 'keys to put in it (they leave any other account)' })),
  },
  { additionalProperties: false },
);
export const AccountPatchBody = Type.Object(
  {
    name: Type.Optional(AccountName),
    drift: Type.Optional(Type.Null({ description: 'null: dismiss the usage-drift finding' })),
  },
  { additionalProperties: false, minProperties: 1 },
);
export const AccountKeysBody = Type.Object(
  { ids: Type.Array(RowId(), { minItems: 1, maxItems: MAX_IMPORT_KEYS }) },
  { additionalProperties: false },
);
export type Suggestion = Static<typeof SuggestionsResponse>['items'][number];
export const AccountDetail = Type.Intersect([
  RefTo(AccountObject),
  Type.Object({ key_list: Type.Array(RefTo(KeyObject), { description: 'its keys (the first 1,000)' }) }),
]);
export const SuggestionsResponse = Type.Object({
  items: Type.Array(
    Type.Object({
      key_ids: Type.Array(Type.Integer()),
      keys: Type.Array(Type.Object({ id: Type.Integer(), key_masked: Type.String(), label: Nullable(Type.String()), account_id: Nullable(Type.Integer()) })),
      account_id: Nullable(Type.Integer({ description: 'the account some of the keys are in already: confirming adds the others to it' })),
      account_name: Nullable(Type.String()),
      plan: Type.String(),
      plan_usage: Type.Number(),
      plan_limit: Nullable(Type.Number()),
      paygo_usage: Nullable(Type.Number()),
      paygo_limit: Nullable(Type.Number()),
      read_at: Type.String({ format: 'date-time', description: 'the refresh that read the identical figures' }),
    }),
  ),
});

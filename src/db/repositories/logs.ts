import { type Kysely, type RawBuilder, sql } from 'kysely';
import type { DialectKind } from '../database.js';
import { jsonRows } from '../json-rows.js';
import type { Database, LogRow, NewLogRow } from '../schema.js';
import { Slicer, chunks } from '../../slices.js';
import type { StatusClass } from '../../schemas/logs.js';

/** A span of time for one key (or account): (from, to]. */
export interface SpendWindow {
  id: number;
  from: string;
  to: string;
}

export type Executor = Kysely<Database>;

export interface LogFilter {
  from?: string;
  to?: string;
  tokenId?: number;
  keyId?: number;
  endpoint?: string;
  status?: number;
  /** `2xx`, `4xx`, `5xx`, or `errors` (any status from 400). */
  statusClass?: StatusClass;
  /** Requests this key failed: its own error answers, and the requests that failed over from it. */
  failedKeyId?: number;
  limit: number;
  /** Rows older than this id (newest first). */
  before?: number;
}

/** A key tried for a request that did not serve it: which, and what it answered (null status: no answer). */
export interface Failover {
  key_id: number;
  status: number | null;
  error: string;
}

/**
 * The failovers as the log's `failovers` column keeps them: a JSON array, null when the first
 * key served. `{"key_id":12,` in the text names key 12 exactly (what `failedKeyId` looks for).
 */
export function encodeFailovers(f: readonly Failover[] | null | undefined): string | null {
  return f?.length ? JSON.stringify(f.map(({ key_id, status, error }) => ({ key_id, status, error }))) : null;
}
const failoverPattern = (keyId: number) => `%{"key_id":${keyId},%`;

/** The stored failovers of a log row; none when absent or unreadable. */
function parseFailovers(text: string | null): Failover[] {
  if (!text) return [];
  try {
    const v = JSON.parse(text) as unknown;
    return Array.isArray(v) ? v.filter((x): x is Failover => typeof x?.key_id === 'number') : [];
  } catch {
    return [];
  }
}

/** A log row as the admin API lists it: with its key's mask and label, its token's name, and the keys it failed over from. */
export type ListedLogRow = Omit<LogRow, 'failovers'> & {
  key_masked: string | null;
  key_label: string | null;
  token_name: string | null;
  failovers: (Failover & { key_masked: string | null })[];
};

export interface StatsBucket {
  bucket: string;
  requests: number;
  credits: number;
  errors: number;
}

export interface Stats {
  by_hour: StatsBucket[];
  by_day: StatsBucket[];
  by_key: { key_id: number | null; key_masked: string | null; requests: number; credits: number; errors: number }[];
  by_token: { token_id: number | null; token_name: string | null; requests: number; credits: number; errors: number }[];
}

type SpentRow = { id: number; credits: number | string };

/** The request log's columns as the outbox writes them. */
const LOG_COLUMNS = [
  ['ts', 'text'],
  ['token_id', 'integer'],
  ['key_id', 'integer'],
  ['endpoint', 'text'],
  ['status', 'integer'],
  ['attempts', 'integer'],
  ['latency_ms', 'double precision'],
  ['credits', 'double precision'],
  ['request_id', 'text'],
  ['error', 'text'],
  ['requests', 'integer'],
  ['via', 'text'],
  ['failovers', 'text'],
  ['cache', 'text'],
  ['credits_saved', 'double precision'],
] as const satisfies ReadonlyArray<readonly [keyof NewLogRow, string]>;

export class LogRepository {
  constructor(
    private readonly db: Executor,
    private readonly dialect: DialectKind = 'sqlite',
  ) {}

  /**
   * The outbox's batch of request-log rows, in its flush's transaction: one statement and one
   * bound parameter however many rows (a multi-row VALUES insert of 1,000 rows cost more to
   * parse than to run, and on SQLite that blocks the event loop).
   */
  async insertBatch(rows: readonly NewLogRow[], ex: Executor): Promise<void> {
    if (rows.length === 0) return;
    const values = rows.map((r) => LOG_COLUMNS.map(([c]) => r[c] ?? null));
    await sql`
      insert into request_logs (${sql.join(LOG_COLUMNS.map(([c]) => sql.ref(c)))})
      select * from ${jsonRows(this.dialect, LOG_COLUMNS, values)}`.execute(ex);
  }

  /**
   * Credits the pool spent through each key within its window, from the log (an index range
   * per key on (key_id, ts)); a statement per 500 keys.
   */
  async spentByKeys(windows: readonly SpendWindow[], ex: Executor = this.db): Promise<Map<number, number>> {
    return this.#spent(windows, ex, (v) => sql<SpentRow>`
      select v.id as id, coalesce(sum(l.credits), 0) as credits
      from ${v} join request_logs l on l.key_id = v.id and l.ts > v.from_ts and l.ts <= v.to_ts
      group by v.id`);
  }

  /** Credits the pool spent through the keys of each account (as they are now) within its window. */
  async spentByAccounts(windows: readonly SpendWindow[], ex: Executor = this.db): Promise<Map<number, number>> {
    return this.#spent(windows, ex, (v) => sql<SpentRow>`
      select v.id as id, coalesce(sum(l.credits), 0) as credits
      from ${v}
        join tavily_keys k on k.account_id = v.id
        join request_logs l on l.key_id = k.id and l.ts > v.from_ts and l.ts <= v.to_ts
      group by v.id`);
  }

  async #spent(
    windows: readonly SpendWindow[],
    ex: Executor,
    query: (v: RawBuilder<unknown>) => RawBuilder<SpentRow>,
  ): Promise<Map<number, number>> {
    const out = new Map<number, number>();
    const slicer = new Slicer();
    for (const part of chunks(windows, 500)) {
      await slicer.breathe();
      const v = jsonRows(this.dialect, [['id', 'integer'], ['from_ts', 'text'], ['to_ts', 'text']], part.map((w) => [w.id, w.from, w.to]));
      const { rows } = await query(v).execute(ex);
      for (const r of rows) out.set(Number(r.id), Number(r.credits));
    }
    return out;
  }

  async list(f: LogFilter, ex: Executor = this.db): Promise<{ rows: ListedLogRow[]; next: number | null }> {
    let q = ex
      .selectFrom('request_logs as l')
      .leftJoin('tavily_keys as k', 'k.id', 'l.key_id')
      .leftJoin('client_tokens as t', 't.id', 'l.token_id')
      .selectAll('l')
      .select(['k.key_masked as key_masked', 'k.label as key_label', 't.name as token_name'])
      .orderBy('l.id', 'desc')
      .limit(f.limit + 1);
    if (f.from) q = q.where('l.ts', '>=', f.from);
    if (f.to) q = q.where('l.ts', '<', f.to);
    if (f.tokenId !== undefined) q = q.where('l.token_id', '=', f.tokenId);
    if (f.keyId !== undefined) q = q.where('l.key_id', '=', f.keyId);
    if (f.endpoint) q = q.where('l.endpoint', '=', f.endpoint);
    if (f.status !== undefined) q = q.where('l.status', '=', f.status);
    if (f.statusClass === 'errors') q = q.where('l.status', '>=', 400);
    else if (f.statusClass) {
      const base = Number(f.statusClass[0]) * 100;
      q = q.where('l.status', '>=', base).where('l.status', '<', base + 100);
    }
    if (f.failedKeyId !== undefined) {
      const id = f.failedKeyId;
      q = q.where((eb) => eb.or([eb.and([eb('l.key_id', '=', id), eb('l.status', '>=', 400)]), eb('l.failovers', 'like', failoverPattern(id))]));
    }
    if (f.before !== undefined) q = q.where('l.id', '<', f.before);
    const rows = await q.execute();
    const more = rows.length > f.limit;
    if (more) rows.pop();
    // The keys failed over from, named in one more read.
    const tried = rows.map((r) => ({ r, failovers: parseFailovers(r.failovers) }));
    const ids = [...new Set(tried.flatMap((t) => t.failovers.map((x) => x.key_id)))];
    const masks = new Map<number, string>();
    for (const part of chunks(ids, 500)) {
      for (const k of await ex.selectFrom('tavily_keys').select(['id', 'key_masked']).where('id', 'in', part).execute()) masks.set(k.id, k.key_masked);
    }
    return {
      rows: tried.map(({ r, failovers }) => ({ ...r, failovers: failovers.map((x) => ({ ...x, key_masked: masks.get(x.key_id) ?? null })) })),
      next: more ? rows.at(-1)!.id : null,
    };
  }

  /** Credits spent through the pool since `from` (the burn rate of the alerts' forecast). */
  async creditsSince(from: string, ex: Executor = this.db): Promise<number> {
    const r = await ex.selectFrom('request_logs').select(sql<number>`coalesce(sum(credits), 0)`.as('credits')).where('ts', '>=', from).executeTakeFirst();
    return Number(r?.credits ?? 0);
  }

  /** Credits spent since `from`, and what the answer cache saved: one scan of the window. */
  async windowTotals(from: string, ex: Executor = this.db): Promise<{ credits: number; saved: number; hits: number; joined: number }> {
    const r = await ex
      .selectFrom('request_logs')
      .select([
        sql<number>`coalesce(sum(credits), 0)`.as('credits'),
        sql<number>`coalesce(sum(credits_saved), 0)`.as('saved'),
        sql<number>`coalesce(sum(case when cache = 'hit' then 1 else 0 end), 0)`.as('hits'),
        sql<number>`coalesce(sum(case when cache = 'joined' then 1 else 0 end), 0)`.as('joined'),
      ])
      .where('ts', '>=', from)
      .executeTakeFirst();
    return { credits: Number(r?.credits ?? 0), saved: Number(r?.saved ?? 0), hits: Number(r?.hits ?? 0), joined: Number(r?.joined ?? 0) };
  }

  /** Requests, credits and errors (status ≥ 400) by hour, day, key and token, over [from, to). */
  async stats(from: string, to: string, ex: Executor = this.db): Promise<Stats> {
    const range = ex.selectFrom('request_logs').where('request_logs.ts', '>=', from).where('request_logs.ts', '<', to);
    const agg = [
      // A row may stand for many requests (aggregated refusals).
      sql<number>`coalesce(sum(request_logs.requests), 0)`.as('requests'),
      sql<number>`coalesce(sum(request_logs.credits), 0)`.as('credits'),
      sql<number>`coalesce(sum(case when request_logs.status >= 400 then request_logs.requests else 0 end), 0)`.as('errors'),
    ] as const;
    const byBucket = (len: number) =>
      range
        .select([sql<string>`substr(ts, 1, ${sql.lit(len)})`.as('bucket'), ...agg])
        .groupBy(sql`substr(ts, 1, ${sql.lit(len)})`)
        .orderBy('bucket')
        .execute();
    const [hours, days, keys, tokens] = await Promise.all([
      byBucket(13),
      byBucket(10),
      range
        .leftJoin('tavily_keys', 'tavily_keys.id', 'request_logs.key_id')
        .select(['request_logs.key_id', 'tavily_keys.key_masked', ...agg])
        .groupBy(['request_logs.key_id', 'tavily_keys.key_masked'])
        .orderBy('credits', 'desc')
        .execute(),
      range
        .leftJoin('client_tokens', 'client_tokens.id', 'request_logs.token_id')
        .select(['request_logs.token_id', 'client_tokens.name as token_name', ...agg])
        .groupBy(['request_logs.token_id', 'client_tokens.name'])
        .orderBy('credits', 'desc')
        .execute(),
    ]);
    const num = <T extends { requests: unknown; credits: unknown; errors: unknown }>(r: T) => ({
      ...r,
      requests: Number(r.requests),
      credits: Number(r.credits),
      errors: Number(r.errors),
    });
    return {
      by_hour: hours.map((h) => num({ ...h, bucket: `${h.bucket}:00:00Z` })),
      by_day: days.map(num),
      by_key: keys.map(num),
      by_token: tokens.map(num),
    };
  }

  /**
   * The key that served the token's request with this request_id, among the requests logged
   * since `since` (the log has no index on request_id: the time range bounds the scan).
   */
  async keyForRequest(tokenId: number, requestId: string, since: string, ex: Executor = this.db): Promise<number | null> {
    const row = await ex
      .selectFrom('request_logs')
      .select('key_id')
      .where('ts', '>=', since)
      .where('request_id', '=', requestId)
      .where('token_id', '=', tokenId)
      .where('key_id', 'is not', null)
      .orderBy('id', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row?.key_id ?? null;
  }

  /** Credits a token spent this month, by endpoint. */
  async tokenSpendByEndpoint(tokenId: number, month: string, ex: Executor = this.db): Promise<Record<string, number>> {
    const rows = await ex
      .selectFrom('request_logs')
      .select(['endpoint', sql<number>`coalesce(sum(credits), 0)`.as('credits')])
      .where('token_id', '=', tokenId)
      .where('ts', '>=', `${month}-01`)
      .groupBy('endpoint')
      .execute();
    return Object.fromEntries(rows.map((r) => [r.endpoint, Number(r.credits)]));
  }

  /** Deletes log rows older than `before` and expired research tasks; returns the rows deleted. */
  async prune(before: string, now: string, ex: Executor = this.db): Promise<number> {
    const r = await ex.deleteFrom('request_logs').where('ts', '<', before).executeTakeFirst();
    await ex.deleteFrom('research_tasks').where('expires_at', '<', now).execute();
    return Number(r.numDeletedRows);
  }
}

import { type Expression, type ExpressionBuilder, type Kysely, type RawBuilder, type SqlBool, sql } from 'kysely';
import type { DialectKind } from '../database.js';
import { type ColumnSpec, jsonRows } from '../json-rows.js';
import { Slicer, chunks, eachChunk } from '../../slices.js';
import { storableText } from '../../text.js';
import type { Database, KeyHealth, KeyRow, KeyStatus, NewKeyRow } from '../schema.js';
import { DRIFT_COLUMNS, type Drift, NO_DRIFT, PLAN_COLUMNS, driftValues, keepOrSetDrift } from '../figures.js';

/** A key as listed: its row, and its account's name and shared room. */
export type KeyListRow = KeyRow & { account_name: string | null; account_remaining: number | null };

/** A Kysely handle or a transaction: every method takes either. */
export type Executor = Kysely<Database>;

export type KeySort = 'remaining_quota' | 'created_at';
export type SortOrder = 'asc' | 'desc';

export interface KeyListFilter {
  status?: KeyStatus;
  /** Keys of this account; 0: keys in no declared account. */
  accountId?: number;
  /** Only keys where Tavily counted usage the pool did not spend. */
  drift?: boolean;
  /** Matches the label or the masked key (its last characters), case-insensitively. */
  search?: string;
  sort: KeySort;
  order: SortOrder;
  limit: number;
  cursor?: KeyCursor;
}

export interface KeyCursor {
  /** The sort column's value of the last row seen. */
  v: number | string;
  /** The id of the last row seen: breaks ties. */
  id: number;
}

export interface KeyPage {
  rows: KeyListRow[];
  next: KeyCursor | null;
  total: number;
}

/** A key as the refresh loads it: one query, only what the refresh needs. */
export interface RefreshCandidate {
  id: number;
  key_ciphertext: string;
  key_masked: string;
  status: KeyHealth;
  disabled_at: string | null;
  account_id: number | null;
  /** The figures of the last check: a fall means a new billing cycle; a rise is compared with what the pool spent. */
  key_usage: number | null;
  plan_usage: number | null;
  usage_read_at: string | null;
}

const CANDIDATE_COLUMNS = ['id', 'key_ciphertext', 'key_masked', 'status', 'disabled_at', 'account_id', 'key_usage', 'plan_usage', 'usage_read_at'] as const;

/** The columns a successful refresh sets, with their SQL types. */
const FIGURE_COLUMNS = [
  ['status', 'text'],
  ['key_usage', 'double precision'],
  ['key_limit', 'double precision'],
  ...PLAN_COLUMNS,
  ['endpoint_usage', 'text'],
  ['remaining_quota', 'double precision'],
  ['usage_read_at', 'text'],
] as const satisfies ReadonlyArray<readonly [keyof KeyRow, string]>;

/** What a successful check sets only when it has something to say (null keeps the stored value). */
const REFRESH_EXTRA = [['cycle_started_at', 'text'], ...DRIFT_COLUMNS] as const;

/** Figures from a successful /usage call, already reduced to what is stored. */
export type KeyFigures = Pick<KeyRow, (typeof FIGURE_COLUMNS)[number][0]>;

export type RefreshWrite =
  | ({
      id: number;
      ok: true;
      /** The account the key belongs to, as loaded. */
      account_id: number | null;
      /** Set when this check saw the key's usage fall (a new billing cycle); null keeps the one stored. */
      cycle_started_at: string | null;
      /** Set when Tavily counted more than the pool spent; null keeps the last finding. */
      drift: Drift | null;
    } & KeyFigures)
  | { id: number; ok: false; error: string; status: KeyHealth | null };

export interface KeySummary {
  by_status: Record<KeyStatus, number>;
  total: number;
  total_remaining: number;
  total_limit: number;
  unknown_quota: number;
  /** Declared accounts with usable keys (each counted once in the totals). */
  accounts: number;
  last_refreshed_at: string | null;
  /** What renews when: the accounts and the keys of their own (the forecast's figures). */
  renewing: RenewingRow[];
}

/** What a key can spend: the least of its own figure and its account's shared room (the list joins the account as `a`). */
const EFFECTIVE_REMAINING = sql<number | null>`case when a.remaining is not null and (tavily_keys.remaining_quota is null or a.remaining < tavily_keys.remaining_quota) then a.remaining else tavily_keys.remaining_quota end`;
/** Remaining quota as a sortable, non-null value: unknown sorts below every known figure. */
const REMAINING_SORT = sql<number>`coalesce(${EFFECTIVE_REMAINING}, -1)`;

const chunk = chunks;

export function likePattern(text: string): string {
  return `%${text.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

function statusFilter(eb: ExpressionBuilder<Database, 'tavily_keys'>, status: KeyStatus): Expression<SqlBool> {
  if (status === 'disabled') return eb('disabled_at', 'is not', null);
  return eb.and([eb('disabled_at', 'is', null), eb('status', '=', status)]);
}

export interface KeyRepositoryOptions {
  /** Ids per statement for lookups, updates and deletes by id. */
  idsPerStatement?: number;
  /** Keys per set-based statement (inserts and the refresh's writes). */
  batchRows?: number;
}

/** SQL types of the columns an insert may set (the JSON row source casts to them on PostgreSQL). */
const INSERT_TYPES: Partial<Record<keyof KeyRow, string>> = {
  // A validated import inserts a refresh's figures.
  ...(Object.fromEntries(FIGURE_COLUMNS) as Partial<Record<keyof KeyRow, string>>),
  label: 'text',
  key_ciphertext: 'text',
  key_hash: 'text',
  key_masked: 'text',
  disabled_at: 'text',
  last_refreshed_at: 'text',
  last_checked_at: 'text',
  last_error: 'text',
  last_used_at: 'text',
  cooldown_until: 'text',
  account_id: 'integer',
  created_at: 'text',
  updated_at: 'text',
};

/**
 * The keys table. Bulk methods (insert, update, delete, load by many ids) work in statements
 * of a bounded size and yield to the event loop between them: 100,000 keys never hold the
 * loop (and the gateway's requests) for more than one statement's time.
 */
/** The columns of a batch of spend through keys. */
export const SPEND_COLUMNS = [['id', 'integer'], ['credits', 'double precision'], ['last_used', 'text']] as const;

export class KeyRepository {
  private readonly idsPerStatement: number;
  private readonly batchRows: number;

  constructor(
    private readonly db: Executor,
    private readonly dialect: DialectKind,
    opts: KeyRepositoryOptions = {},
  ) {
    this.idsPerStatement = opts.idsPerStatement ?? 1000;
    // SQLite runs a statement in this thread: 500 rows keep one under ~5 ms. PostgreSQL runs it
    // in its own process, so bigger statements (fewer round trips) cost the event loop little.
    this.batchRows = opts.batchRows ?? (dialect === 'postgres' ? 5000 : 500);
  }

  // The gateway's outbox writes these, each in its flush's transaction.

  /** Credits spent through keys since the last flush, and their last use (one statement). */
  async applySpend(rows: readonly { id: number; credits: number; lastUsed: string }[], ex: Executor): Promise<void> {
    if (rows.length === 0) return;
    await sql`
      update tavily_keys set
        remaining_quota = case when remaining_quota - v.credits < 0 then 0 else remaining_quota - v.credits end,
        last_used_at = case when last_used_at is null or last_used_at < v.last_used then v.last_used else last_used_at end
      from ${jsonRows(this.dialect, SPEND_COLUMNS, rows.map((r) => [r.id, r.credits, r.lastUsed]))}
      where tavily_keys.id = v.id`.execute(ex);
  }

  /** What the gateway learned of keys' health (a 401, a 432) since the last flush. */
  async setHealth(rows: readonly { id: number; status: KeyHealth; error: string }[], now: string, ex: Executor): Promise<void> {
    if (rows.length === 0) return;
    const cols = [['id', 'integer'], ['status', 'text'], ['error', 'text']] as const;
    await sql`
      update tavily_keys set status = v.status, last_error = v.error, updated_at = ${now}
      from ${jsonRows(this.dialect, cols, rows.map((r) => [r.id, r.status, r.error]))}
      where tavily_keys.id = v.id`.execute(ex);
  }

  /** Keys' rests (after a 429, or failures): a later rest is never shortened by an earlier one. */
  async setCooldowns(rows: readonly { id: number; until: string; reason: string }[], ex: Executor): Promise<void> {
    if (rows.length === 0) return;
    const cols = [['id', 'integer'], ['until', 'text'], ['reason', 'text']] as const;
    await sql`
      update tavily_keys set cooldown_until = v.until, cooldown_reason = v.reason
      from ${jsonRows(this.dialect, cols, rows.map((r) => [r.id, r.until, r.reason]))}
      where tavily_keys.id = v.id and (cooldown_until is null or cooldown_until < v.until)`.execute(ex);
  }

  /** PostgreSQL: locks these keys' rows by id, so that writers that lock in this order never deadlock. */
  async lockInOrder(ids: readonly number[], ex: Executor): Promise<void> {
    if (ids.length > 0) await sql`select id from tavily_keys where id = any(cast(${ids} as integer[])) order by id for update`.execute(ex);
  }

  /** Of the given hashes, those already in the pool. */
  async existingHashes(hashes: readonly string[], ex: Executor = this.db): Promise<Set<string>> {
    const found = new Set<string>();
    await eachChunk(hashes, this.idsPerStatement, async (part) => {
      const rows = await ex.selectFrom('tavily_keys').select('key_hash').where('key_hash', 'in', part).execute();
      for (const r of rows) found.add(r.key_hash);
    });
    return found;
  }

  /**
   * Inserts rows in set-based statements (the rows travel as one JSON parameter); a hash that
   * is already present is skipped, not an error. Returns the id of each row inserted, by
   * hash. Every row must set the same columns.
   */
  async insertMany(rows: readonly NewKeyRow[], ex: Executor = this.db): Promise<{ id: number; key_hash: string }[]> {
    if (rows.length === 0) return [];
    const cols = Object.keys(rows[0]!) as (keyof NewKeyRow)[];
    const specs = cols.map((c): ColumnSpec => {
      const type = INSERT_TYPES[c as keyof KeyRow];
      if (!type) throw new Error(`insertMany: column ${String(c)} cannot be inserted`);
      return [c, type];
    });
    const inserted: { id: number; key_hash: string }[] = [];
    await eachChunk(rows, this.batchRows, async (part) => {
      const values = part.map((r) => cols.map((c) => r[c] ?? null));
      // `where true`: SQLite needs it to read ON CONFLICT after INSERT … SELECT.
      const { rows: got } = await sql<{ id: number; key_hash: string }>`
        insert into tavily_keys (${sql.join(cols.map((c) => sql.ref(c)))})
        select ${sql.join(cols.map((c) => sql.ref(`v.${c}`)))} from ${jsonRows(this.dialect, specs, values)} where true
        on conflict (key_hash) do nothing
        returning id, key_hash`.execute(ex);
      inserted.push(...got);
    });
    return inserted;
  }

  /** Keys with their account's name and room (left-joined as `a`). */
  #withAccount(ex: Executor) {
    return ex
      .selectFrom('tavily_keys')
      .leftJoin('tavily_accounts as a', 'a.id', 'tavily_keys.account_id')
      .selectAll('tavily_keys')
      .select(['a.name as account_name', 'a.remaining as account_remaining']);
  }

  async getById(id: number, ex: Executor = this.db): Promise<KeyListRow | undefined> {
    return this.#withAccount(ex).where('tavily_keys.id', '=', id).executeTakeFirst();
  }

  /** The keys of an account (at most `limit`), in id order. */
  async ofAccount(accountId: number, limit: number, ex: Executor = this.db): Promise<KeyListRow[]> {
    return this.#withAccount(ex).where('tavily_keys.account_id', '=', accountId).orderBy('tavily_keys.id').limit(limit).execute();
  }

  async list(filter: KeyListFilter, ex: Executor = this.db): Promise<KeyPage> {
    let base = ex.selectFrom('tavily_keys').leftJoin('tavily_accounts as a', 'a.id', 'tavily_keys.account_id');
    if (filter.accountId !== undefined) {
      base = filter.accountId === 0 ? base.where('tavily_keys.account_id', 'is', null) : base.where('tavily_keys.account_id', '=', filter.accountId);
    }
    if (filter.drift) base = base.where('tavily_keys.drift_at', 'is not', null);
    if (filter.status) {
      const status = filter.status;
      base = base.where((eb) => statusFilter(eb, status));
    }
    if (filter.search) {
      const p = likePattern(filter.search);
      base = base.where(
        sql<SqlBool>`(lower(coalesce(label, '')) like ${p} escape '\\' or lower(key_masked) like ${p} escape '\\')`,
      );
    }
    const sortExpr: RawBuilder<number | string> = filter.sort === 'remaining_quota' ? REMAINING_SORT : sql`tavily_keys.created_at`;
    const desc = filter.order === 'desc';
    let page = base.selectAll('tavily_keys').select(['a.name as account_name', 'a.remaining as account_remaining', REMAINING_SORT.as('sort_remaining')]);
    if (filter.cursor) {
      const { v, id } = filter.cursor;
      const cmp = desc ? '<' : '>';
      page = page.where((eb) =>
        eb.or([eb(sortExpr, cmp, v), eb.and([eb(sortExpr, '=', v), eb('tavily_keys.id', cmp, id)])]),
      );
    }
    const [found, count] = await Promise.all([
      page
        .orderBy(sortExpr, filter.order)
        .orderBy('tavily_keys.id', filter.order)
        .limit(filter.limit + 1)
        .execute(),
      base.select((eb) => eb.fn.countAll<number | string>().as('n')).executeTakeFirstOrThrow(),
    ]);
    const more = found.length > filter.limit;
    if (more) found.pop();
    const last = found.at(-1);
    const next =
      more && last
        ? { v: filter.sort === 'remaining_quota' ? Number(last.sort_remaining) : last.created_at, id: last.id }
        : null;
    const rows = found.map(({ sort_remaining: _, ...r }) => r);
    return { rows, next, total: Number(count.n) };
  }

  async update(
    id: number,
    patch: { label?: string | null; enabled?: boolean; clearDrift?: boolean },
    ex: Executor = this.db,
  ): Promise<KeyRow | undefined> {
    const now = new Date().toISOString();
    return ex
      .updateTable('tavily_keys')
      .set((eb) => ({
        updated_at: now,
        ...(patch.label !== undefined ? { label: patch.label } : {}),
        ...(patch.clearDrift ? NO_DRIFT : {}),
        ...(patch.enabled === true ? { disabled_at: null } : {}),
        // Disabling keeps the first disable time when already disabled.
        ...(patch.enabled === false ? { disabled_at: eb.fn.coalesce('disabled_at', eb.val(now)) } : {}),
      }))
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirst();
  }

  /** Enables or disables many keys, a chunk per statement; returns the ids that exist. */
  async setEnabled(ids: readonly number[], enabled: boolean, ex: Executor = this.db): Promise<number[]> {
    const now = new Date().toISOString();
    const done: number[] = [];
    await eachChunk(ids, this.idsPerStatement, async (part) => {
      const rows = await ex
        .updateTable('tavily_keys')
        .set((eb) => ({
          updated_at: now,
          disabled_at: enabled ? null : eb.fn.coalesce('disabled_at', eb.val(now)),
        }))
        .where('id', 'in', part)
        .returning('id')
        .execute();
      done.push(...rows.map((r) => r.id));
    });
    return done;
  }

  async deleteMany(ids: readonly number[], ex: Executor = this.db): Promise<number[]> {
    const done: number[] = [];
    await eachChunk(ids, this.idsPerStatement, async (part) => {
      const rows = await ex.deleteFrom('tavily_keys').where('id', 'in', part).returning('id').execute();
      done.push(...rows.map((r) => r.id));
    });
    return done;
  }

  /**
   * What the gateway's in-memory pool needs: of the given keys, or of every key, read a page
   * at a time (by id) so that a pool of 300,000 keys is not one long read.
   */
  async loadForPool(ids?: readonly number[], ex: Executor = this.db) {
    const q = ex
      .selectFrom('tavily_keys')
      .leftJoin('tavily_accounts as a', 'a.id', 'tavily_keys.account_id')
      .select([
        'tavily_keys.id',
        'tavily_keys.key_ciphertext',
        'tavily_keys.key_masked',
        'tavily_keys.status',
        'tavily_keys.disabled_at',
        'tavily_keys.remaining_quota',
        'tavily_keys.last_used_at',
        'tavily_keys.cooldown_until',
        'tavily_keys.account_id',
        'a.remaining as account_remaining',
        'tavily_keys.cycle_started_at',
        'a.cycle_started_at as account_cycle_started_at',
      ])
      .orderBy('tavily_keys.id');
    return this.#readMany(
      (f) => (f.ids ? q.where('tavily_keys.id', 'in', f.ids) : q.where('tavily_keys.id', '>', f.after).limit(f.limit)).execute(),
      ids,
    );
  }

  /**
   * Rows of a select by id: of the given ids, a statement per chunk, or of every row, a page
   * at a time (by id); yielding to the event loop as a big job should. In id order.
   */
  async #readMany<R extends { id: number }>(
    select: (f: { ids: number[]; after?: never; limit?: never } | { ids?: never; after: number; limit: number }) => Promise<R[]>,
    ids?: readonly number[],
  ): Promise<R[]> {
    const rows: R[] = [];
    if (ids) {
      await eachChunk(ids, this.idsPerStatement, async (part) => void rows.push(...(await select({ ids: part }))));
      return rows.sort((a, b) => a.id - b.id);
    }
    const page = 5000;
    const slicer = new Slicer();
    for (let after = 0; ; ) {
      const got = await select({ after, limit: page });
      rows.push(...got);
      if (got.length < page) return rows;
      after = got.at(-1)!.id;
      await slicer.breathe();
    }
  }

  /**
   * The refresh's read: the keys to refresh, with only the columns it needs. One query for a
   * small pool; a large one is read a page at a time (by id), yielding between pages.
   */
  async loadForRefresh(
    opts: { ids?: readonly number[]; refreshedBefore?: string; exhausted?: 'only' | 'skip' },
    ex: Executor = this.db,
  ): Promise<RefreshCandidate[]> {
    let q = ex.selectFrom('tavily_keys').select(CANDIDATE_COLUMNS).orderBy('id');
    // Out of credits: marked so, or spent to nothing since the last check.
    if (opts.exhausted === 'only') q = q.where((eb) => eb.or([eb('status', '=', 'exhausted'), eb('remaining_quota', '<=', 0)]));
    if (opts.exhausted === 'skip') q = q.where('status', '<>', 'exhausted');
    if (opts.refreshedBefore) {
      const before = opts.refreshedBefore;
      q = q.where((eb) => eb.or([eb('last_refreshed_at', 'is', null), eb('last_refreshed_at', '<', before)]));
    }
    if (opts.ids?.length === 0) return [];
    return this.#readMany((f) => (f.ids ? q.where('id', 'in', f.ids) : q.where('id', '>', f.after).limit(f.limit)).execute(), opts.ids);
  }

  /** Keys of these accounts marked exhausted, other than `except`: checked too when their account has room again. */
  async exhaustedOfAccounts(accountIds: readonly number[], except: ReadonlySet<number>, ex: Executor = this.db): Promise<RefreshCandidate[]> {
    const out: RefreshCandidate[] = [];
    await eachChunk(accountIds, this.idsPerStatement, async (part) => {
      const rows = await ex.selectFrom('tavily_keys').select(CANDIDATE_COLUMNS).where('account_id', 'in', part).where('status', '=', 'exhausted').execute();
      for (const r of rows) if (!except.has(r.id)) out.push(r);
    });
    return out;
  }

  /**
   * Writes a refresh's outcomes in set-based statements: the outcomes travel as one JSON
   * parameter and a single `UPDATE … FROM` applies them — one statement for the successes
   * and one for the failures (per `batchRows` keys), never one per key. Call it in a transaction.
   */
  async applyRefresh(writes: readonly RefreshWrite[], at: string, ex: Executor = this.db): Promise<void> {
    const ok = writes.filter((w): w is Extract<RefreshWrite, { ok: true }> => w.ok);
    const failed = writes.filter((w): w is Extract<RefreshWrite, { ok: false }> => !w.ok);

    const slicer = new Slicer();
    for (const part of chunk(ok, this.batchRows)) {
      await slicer.breathe();
      const rows = part.map((w) => [
        w.id,
        ...FIGURE_COLUMNS.map(([c]) => w[c]),
        w.cycle_started_at,
        ...driftValues(w.drift),
      ]);
      await sql`
        update tavily_keys set
          ${sql.join(FIGURE_COLUMNS.map(([c]) => sql`${sql.ref(c)} = v.${sql.ref(c)}`))},
          cycle_started_at = coalesce(v.cycle_started_at, tavily_keys.cycle_started_at),
          ${keepOrSetDrift('tavily_keys')},
          last_refreshed_at = ${at},
          last_checked_at = ${at},
          last_error = null,
          updated_at = ${at}
        from ${jsonRows(this.dialect, [['id', 'integer'], ...FIGURE_COLUMNS, ...REFRESH_EXTRA], rows)}
        where tavily_keys.id = v.id`.execute(ex);
    }

    for (const part of chunk(failed, this.batchRows)) {
      await slicer.breathe();
      const rows = part.map((w) => [w.id, w.status, storableText(w.error)]);
      const cols: ColumnSpec[] = [['id', 'integer'], ['status', 'text'], ['last_error', 'text']];
      await sql`
        update tavily_keys set
          status = coalesce(v.status, tavily_keys.status),
          last_error = v.last_error,
          last_checked_at = ${at},
          updated_at = ${at}
        from ${jsonRows(this.dialect, cols, rows)}
        where tavily_keys.id = v.id`.execute(ex);
    }
  }

  /**
   * Keys by status, and what the pool can spend, counting each account once: a key in no
   * declared account adds its own figure; an account adds the least of its shared room and
   * what its keys' own figures add up to.
   */
  async summary(ex: Executor = this.db): Promise<KeySummary> {
    const grouped = sql<number>`case when account_id is null then 0 else 1 end`;
    const disabled = sql<number>`case when disabled_at is null then 0 else 1 end`;
    const [rows, renewing] = await Promise.all([
      ex
        .selectFrom('tavily_keys')
        .select((eb) => [
          'status',
          disabled.as('disabled'),
          grouped.as('grouped'),
          eb.fn.countAll<number | string>().as('n'),
          eb.fn.sum<number | string | null>('remaining_quota').as('remaining'),
          eb.fn.sum<number | string | null>(eb.fn.coalesce('key_limit', 'plan_limit')).as('limit'),
          eb.fn.countAll<number | string>().filterWhere('remaining_quota', 'is', null).as('unknown'),
          eb.fn.max('last_refreshed_at').as('last'),
        ])
        .groupBy(['status', disabled, grouped])
        .execute(),
      this.#renewing(ex),
    ]);
    const out: KeySummary = {
      by_status: { active: 0, disabled: 0, invalid: 0, exhausted: 0 },
      total: 0,
      total_remaining: 0,
      total_limit: 0,
      unknown_quota: 0,
      accounts: 0,
      last_refreshed_at: null,
      renewing,
    };
    for (const r of rows) {
      const n = Number(r.n);
      const isDisabled = Number(r.disabled) === 1;
      out.total += n;
      out.by_status[isDisabled ? 'disabled' : r.status] += n;
      // What the pool can spend: keys that are enabled and not known to be dead.
      if (!isDisabled && r.status !== 'invalid') {
        if (Number(r.grouped) === 0) {
          out.total_remaining += Number(r.remaining ?? 0);
          out.total_limit += Number(r.limit ?? 0);
        }
        out.unknown_quota += Number(r.unknown);
      }
      if (r.last && (out.last_refreshed_at === null || r.last > out.last_refreshed_at)) out.last_refreshed_at = r.last;
    }
    // Each declared account once: the least of its shared room and its keys' own figures.
    for (const a of renewing) {
      if (a.accountId === null) continue;
      out.accounts++;
      out.total_remaining += a.remaining;
      out.total_limit += a.limit ?? 0;
    }
    return out;
  }

  /**
   * The pool's credits by when they renew: each declared account with usable keys (its usable
   * keys' own figures, capped by the account's room and limit; its cycle start), and the keys
   * of their own grouped by the day their cycle began (null: not seen). Exhausted keys count:
   * they renew too.
   */
  async #renewing(ex: Executor): Promise<RenewingRow[]> {
    const [accounts, own] = await Promise.all([
      sql<{ id: number; name: string; n: number | string; remaining: number | string | null; lim: number | string | null; cycle: string | null }>`
        select a.id as id, a.name as name, m.n as n,
          case
            when m.r is null then coalesce(a.remaining, 0)
            when a.remaining is not null and a.remaining < m.r then a.remaining
            else m.r end as remaining,
          case
            when a.plan_limit is not null and (m.l is null or a.plan_limit + coalesce(a.paygo_limit, 0) < m.l) then a.plan_limit + coalesce(a.paygo_limit, 0)
            else m.l end as lim,
          coalesce(a.cycle_started_at, m.c) as cycle
        from (
          select account_id, count(*) as n, sum(remaining_quota) as r, sum(coalesce(key_limit, plan_limit)) as l, max(cycle_started_at) as c
          from tavily_keys
          where account_id is not null and disabled_at is null and status <> 'invalid'
          group by account_id
        ) m join tavily_accounts a on a.id = m.account_id`.execute(ex),
      sql<{ n: number | string; remaining: number | string | null; lim: number | string | null; cycle: string | null }>`
        select count(*) as n, sum(coalesce(remaining_quota, 0)) as remaining, sum(coalesce(key_limit, plan_limit)) as lim, min(cycle_started_at) as cycle
        from tavily_keys
        where account_id is null and disabled_at is null and status <> 'invalid'
        group by substr(cycle_started_at, 1, 10)`.execute(ex),
    ]);
    const num = (v: number | string | null) => (v === null ? null : Number(v));
    return [
      ...accounts.rows.map((r) => ({ accountId: Number(r.id), name: r.name, keys: Number(r.n), remaining: num(r.remaining) ?? 0, limit: num(r.lim), cycleStartedAt: r.cycle })),
      ...own.rows.map((r) => ({ accountId: null, name: null, keys: Number(r.n), remaining: num(r.remaining) ?? 0, limit: num(r.lim), cycleStartedAt: r.cycle })),
    ];
  }

  /** One page of sealed key texts for the export: ids after `afterId`, in id order. */
  async sealedKeysPage(status: KeyStatus | undefined, afterId: number, limit: number, ex: Executor = this.db): Promise<{ id: number; key_ciphertext: string }[]> {
    let q = ex.selectFrom('tavily_keys').select(['id', 'key_ciphertext']).where('id', '>', afterId).orderBy('id').limit(limit);
    if (status) q = q.where((eb) => statusFilter(eb, status));
    return q.execute();
  }
}

/** Credits that renew together: a declared account, or keys of their own whose cycle began the same day. */
export interface RenewingRow {
  accountId: number | null;
  /** The account's name; null for keys of their own. */
  name: string | null;
  keys: number;
  remaining: number;
  limit: number | null;
  cycleStartedAt: string | null;
}

/** The status the API shows for a stored row. */
export function apiStatus(row: Pick<KeyRow, 'status' | 'disabled_at'>): KeyStatus {
  return row.disabled_at ? 'disabled' : row.status;
}

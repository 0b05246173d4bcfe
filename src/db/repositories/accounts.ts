import { type Kysely, type SqlBool, sql } from 'kysely';
import { burnWindowStart } from '../../forecast.js';
import { eachChunk } from '../../slices.js';
import type { DialectKind } from '../database.js';
import { DRIFT_COLUMNS, type Drift, NO_DRIFT, PLAN_COLUMNS, accountRoom, driftValues, keepOrSetDrift, laterReading } from '../figures.js';
import { jsonRows } from '../json-rows.js';
import type { AccountRow, Database } from '../schema.js';
import { SPEND_COLUMNS, likePattern } from './keys.js';

export type { Drift };

export type Executor = Kysely<Database>;

/**
 * The account figures a /usage answer carries, as stored on the account, with its room (plan
 * room plus pay-as-you-go room; null when the plan has no limit to count from).
 */
export type AccountFigures = Pick<AccountRow, (typeof PLAN_COLUMNS)[number][0] | 'remaining'> & { usage_read_at: string };

/** What a refresh stores on an account. */
export interface AccountRefreshWrite extends AccountFigures {
  id: number;
  /** Set when this refresh saw the account's usage fall (a new billing cycle); null keeps the one stored. */
  cycle_started_at: string | null;
  /** Set when Tavily counted more than the pool spent; null keeps the last finding. */
  drift: Drift | null;
}

/** An account as the admin API lists it: its row and what its keys add up to. */
export interface AccountListRow extends AccountRow {
  keys: number;
  active: number;
  exhausted: number;
  invalid: number;
  disabled: number;
  /** What the account's usable keys can spend by their own figures (before the account's room caps it). */
  keys_remaining: number | null;
  /** Credits the pool spent through the account's keys in the last 7 days. */
  spent_7d: number;
}

export interface Suggestion {
  key_ids: number[];
  keys: { id: number; key_masked: string; label: string | null; account_id: number | null }[];
  /** The declared account some of the keys already belong to (the rest would join it); null: a new account. */
  account_id: number | null;
  account_name: string | null;
  plan: string;
  plan_usage: number;
  plan_limit: number | null;
  paygo_usage: number | null;
  paygo_limit: number | null;
  read_at: string;
}

/** The figures an account takes from its keys' latest /usage answer. */
const FIGURE_COLUMNS = [['id', 'integer'], ...PLAN_COLUMNS, ['remaining', 'double precision'], ['usage_read_at', 'text']] as const;
/** …and what a refresh may add. */
const REFRESH_COLUMNS = [...FIGURE_COLUMNS, ['cycle_started_at', 'text'], ...DRIFT_COLUMNS] as const;

const num = (v: unknown): number => Number(v ?? 0);

/**
 * The accounts table: named groups of keys that share one Tavily account's credits. Each key
 * belongs to at most one (tavily_keys.account_id); a key with none is its own account.
 */
export class AccountRepository {
  constructor(
    private readonly db: Executor,
    private readonly dialect: DialectKind,
  ) {}

  // The gateway's outbox writes these, each in its flush's transaction.

  /** A key's spend is its account's too: every key of the account has that much less room. */
  async applyKeySpend(rows: readonly { id: number; credits: number; lastUsed: string }[], ex: Executor): Promise<void> {
    const spent = rows.filter((r) => r.credits > 0).map((r) => [r.id, r.credits, r.lastUsed]);
    if (spent.length === 0) return;
    await sql`
      update tavily_accounts set
        remaining = case when remaining - s.credits < 0 then 0 else remaining - s.credits end
      from (
        select k.account_id as id, sum(v.credits) as credits
        from ${jsonRows(this.dialect, SPEND_COLUMNS, spent)} join tavily_keys k on k.id = v.id
        where k.account_id is not null
        group by k.account_id
      ) s
      where tavily_accounts.id = s.id and tavily_accounts.remaining is not null`.execute(ex);
  }

  /** Accounts found to have run out (set, not deducted). */
  async setRemaining(rows: readonly (readonly [id: number, remaining: number])[], now: string, ex: Executor): Promise<void> {
    if (rows.length === 0) return;
    const cols = [['id', 'integer'], ['remaining', 'double precision']] as const;
    await sql`
      update tavily_accounts set remaining = v.remaining, updated_at = ${now}
      from ${jsonRows(this.dialect, cols, rows.map(([id, remaining]) => [id, remaining]))}
      where tavily_accounts.id = v.id`.execute(ex);
  }

  /** PostgreSQL: locks, by id, these accounts and those of the keys that spent. */
  async lockInOrder(ids: readonly number[], spentKeyIds: readonly number[], ex: Executor): Promise<void> {
    if (ids.length === 0 && spentKeyIds.length === 0) return;
    await sql`
      select id from tavily_accounts
      where id in (select account_id from tavily_keys where id = any(cast(${spentKeyIds} as integer[]))) or id = any(cast(${ids} as integer[]))
      order by id for update`.execute(ex);
  }

  async list(f: { search?: string; limit: number; after?: number }, ex: Executor = this.db): Promise<{ rows: AccountListRow[]; total: number; next: number | null }> {
    let base = ex.selectFrom('tavily_accounts');
    if (f.search) base = base.where(sql<SqlBool>`lower(name) like ${likePattern(f.search)} escape '\\'`);
    let page = base.selectAll().orderBy('id').limit(f.limit + 1);
    if (f.after !== undefined) page = page.where('id', '>', f.after);
    const [rows, count] = await Promise.all([
      page.execute(),
      base.select((eb) => eb.fn.countAll<number | string>().as('n')).executeTakeFirstOrThrow(),
    ]);
    const more = rows.length > f.limit;
    if (more) rows.pop();
    const withKeys = await this.#withKeys(rows, ex);
    return { rows: withKeys, total: Number(count.n), next: more ? rows.at(-1)!.id : null };
  }

  async getById(id: number, ex: Executor = this.db): Promise<AccountListRow | undefined> {
    const row = await ex.selectFrom('tavily_accounts').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? (await this.#withKeys([row], ex))[0] : undefined;
  }

  /** The accounts' key counts, their keys' own room, and what the pool spent through them in 7 days. */
  async #withKeys(rows: AccountRow[], ex: Executor): Promise<AccountListRow[]> {
    if (rows.length === 0) return [];
    const ids = rows.map((r) => r.id);
    const since = burnWindowStart();
    const [keys, spent] = await Promise.all([
      ex
        .selectFrom('tavily_keys')
        .select((eb) => [
          'account_id',
          eb.fn.countAll<number | string>().as('n'),
          sql<number | string>`sum(case when disabled_at is null and status = 'active' then 1 else 0 end)`.as('active'),
          sql<number | string>`sum(case when disabled_at is null and status = 'exhausted' then 1 else 0 end)`.as('exhausted'),
          sql<number | string>`sum(case when disabled_at is null and status = 'invalid' then 1 else 0 end)`.as('invalid'),
          sql<number | string>`sum(case when disabled_at is not null then 1 else 0 end)`.as('disabled'),
          sql<number | string | null>`sum(case when disabled_at is null and status <> 'invalid' then remaining_quota end)`.as('remaining'),
        ])
        .where('account_id', 'in', ids)
        .groupBy('account_id')
        .execute(),
      ex
        .selectFrom('request_logs')
        .innerJoin('tavily_keys', 'tavily_keys.id', 'request_logs.key_id')
        .select(['tavily_keys.account_id', sql<number | string>`coalesce(sum(request_logs.credits), 0)`.as('credits')])
        .where('tavily_keys.account_id', 'in', ids)
        .where('request_logs.ts', '>=', since)
        .groupBy('tavily_keys.account_id')
        .execute(),
    ]);
    const byId = new Map(keys.map((k) => [k.account_id, k]));
    const spentById = new Map(spent.map((s) => [s.account_id, num(s.credits)]));
    return rows.map((r) => {
      const k = byId.get(r.id);
      return {
        ...r,
        keys: num(k?.n),
        active: num(k?.active),
        exhausted: num(k?.exhausted),
        invalid: num(k?.invalid),
        disabled: num(k?.disabled),
        keys_remaining: k?.remaining === null || k?.remaining === undefined ? null : num(k.remaining),
        spent_7d: spentById.get(r.id) ?? 0,
      };
    });
  }

  async create(name: string, ex: Executor = this.db): Promise<AccountRow | undefined> {
    const now = new Date().toISOString();
    return ex
      .insertInto('tavily_accounts')
      .values({ name, created_at: now, updated_at: now })
      .onConflict((oc) => oc.column('name').doNothing())
      .returningAll()
      .executeTakeFirst();
  }

  /** The ids of these account names, creating those that do not exist. */
  async ensureNames(names: readonly string[], ex: Executor = this.db): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    const now = new Date().toISOString();
    await eachChunk([...new Set(names)], 1000, async (part) => {
      await ex
        .insertInto('tavily_accounts')
        .values(part.map((name) => ({ name, created_at: now, updated_at: now })))
        .onConflict((oc) => oc.column('name').doNothing())
        .execute();
      const rows = await ex.selectFrom('tavily_accounts').select(['id', 'name']).where('name', 'in', part).execute();
      for (const r of rows) out.set(r.name, r.id);
    });
    return out;
  }

  async exists(id: number, ex: Executor = this.db): Promise<boolean> {
    return (await ex.selectFrom('tavily_accounts').select('id').where('id', '=', id).executeTakeFirst()) !== undefined;
  }

  /** Renames the account and/or dismisses its drift finding. Call it in a transaction: the name is checked, then set. */
  async update(id: number, patch: { name?: string; clearDrift?: boolean }, ex: Executor = this.db): Promise<'ok' | 'not_found' | 'name_taken'> {
    const row = await ex.selectFrom('tavily_accounts').select('name').where('id', '=', id).executeTakeFirst();
    if (!row) return 'not_found';
    const rename = patch.name !== undefined && patch.name !== row.name;
    if (rename && (await ex.selectFrom('tavily_accounts').select('id').where('name', '=', patch.name!).executeTakeFirst())) return 'name_taken';
    if (!rename && !patch.clearDrift) return 'ok';
    await ex
      .updateTable('tavily_accounts')
      .set({ updated_at: new Date().toISOString(), ...(rename ? { name: patch.name } : {}), ...(patch.clearDrift ? NO_DRIFT : {}) })
      .where('id', '=', id)
      .execute();
    return 'ok';
  }

  /** Deletes the account; its keys become their own accounts again. Returns their ids, or null when there is no such account. */
  async delete(id: number, ex: Executor = this.db): Promise<number[] | null> {
    const members = await ex.updateTable('tavily_keys').set({ account_id: null }).where('account_id', '=', id).returning('id').execute();
    const gone = await ex.deleteFrom('tavily_accounts').where('id', '=', id).returning('id').executeTakeFirst();
    return gone ? members.map((m) => m.id) : null;
  }

  /**
   * Puts keys into an account (or, with null, out of any). Returns the keys that exist, and
   * the accounts they left (whose figures must be counted again).
   */
  async assign(keyIds: readonly number[], accountId: number | null, ex: Executor = this.db): Promise<{ ids: number[]; left: number[] }> {
    const ids: number[] = [];
    const left = new Set<number>();
    const now = new Date().toISOString();
    await eachChunk(keyIds, 1000, async (part) => {
      const before = await ex.selectFrom('tavily_keys').select(['id', 'account_id']).where('id', 'in', part).execute();
      for (const b of before) if (b.account_id !== null && b.account_id !== accountId) left.add(b.account_id);
      const rows = await ex.updateTable('tavily_keys').set({ account_id: accountId, updated_at: now }).where('id', 'in', part).returning('id').execute();
      ids.push(...rows.map((r) => r.id));
    });
    return { ids, left: [...left] };
  }

  /** Stored figures of these accounts: where a refresh's comparison starts. */
  async loadForRefresh(ids: readonly number[], ex: Executor = this.db) {
    const rows: Pick<AccountRow, 'id' | 'plan_usage' | 'paygo_usage' | 'usage_read_at'>[] = [];
    await eachChunk(ids, 1000, async (part) => {
      rows.push(...(await ex.selectFrom('tavily_accounts').select(['id', 'plan_usage', 'paygo_usage', 'usage_read_at']).where('id', 'in', part).execute()));
    });
    return rows;
  }

  /** A refresh's account figures, in one set-based statement per 500 accounts. Call it in the refresh's transaction. */
  async applyRefresh(writes: readonly AccountRefreshWrite[], at: string, ex: Executor = this.db): Promise<void> {
    await eachChunk(writes, 500, async (part) => {
      const rows = part.map((w) => [
        w.id, w.plan, w.plan_usage, w.plan_limit, w.paygo_usage, w.paygo_limit, w.remaining, w.usage_read_at, w.cycle_started_at, ...driftValues(w.drift),
      ]);
      await sql`
        update tavily_accounts set
          plan = v.plan, plan_usage = v.plan_usage, plan_limit = v.plan_limit,
          paygo_usage = v.paygo_usage, paygo_limit = v.paygo_limit, remaining = v.remaining,
          usage_read_at = v.usage_read_at,
          cycle_started_at = coalesce(v.cycle_started_at, tavily_accounts.cycle_started_at),
          ${keepOrSetDrift('tavily_accounts')},
          last_refreshed_at = ${at},
          updated_at = ${at}
        from ${jsonRows(this.dialect, REFRESH_COLUMNS, rows)}
        where tavily_accounts.id = v.id`.execute(ex);
    });
  }

  /**
   * Counts these accounts' figures again from their keys' stored figures (after keys joined or
   * left them): the latest /usage answer of any of its keys gives the account's figures, and
   * its room is what that answer left less what the pool spent through the account's keys
   * since. An account none of whose keys has figures has none either. Returns each account's room.
   */
  async recompute(ids: readonly number[], ex: Executor = this.db): Promise<Map<number, number | null>> {
    const out = new Map<number, number | null>();
    // In set-based statements, a chunk of accounts at a time: an import naming 10,000
    // accounts (one per e-mail address) does not hold the event loop for long.
    await eachChunk([...new Set(ids)], 500, async (part) => {
      const members = await ex
        .selectFrom('tavily_keys')
        .select(['account_id', 'plan', 'plan_usage', 'plan_limit', 'paygo_usage', 'paygo_limit', 'usage_read_at'])
        .where('account_id', 'in', part)
        .where('usage_read_at', 'is not', null)
        .execute();
      const latest = new Map<number, (typeof members)[number]>();
      for (const m of members) {
        const cur = latest.get(m.account_id!);
        if (laterReading({ at: m.usage_read_at!, usage: m.plan_usage }, cur && { at: cur.usage_read_at!, usage: cur.plan_usage })) latest.set(m.account_id!, m);
      }
      // What the pool spent through each account's keys since its figures were read.
      const windows = [...latest].filter(([, m]) => accountRoom(m) !== null).map(([id, m]) => [id, m.usage_read_at!]);
      const spent = new Map<number, number>();
      if (windows.length > 0) {
        const { rows } = await sql<{ id: number; credits: number | string }>`
          select v.id as id, coalesce(sum(l.credits), 0) as credits
          from ${jsonRows(this.dialect, [['id', 'integer'], ['from_ts', 'text']], windows)}
            join tavily_keys k on k.account_id = v.id
            join request_logs l on l.key_id = k.id and l.ts > v.from_ts
          group by v.id`.execute(ex);
        for (const r of rows) spent.set(Number(r.id), num(r.credits));
      }
      const rows = part.map((id) => {
        const m = latest.get(id);
        const room = m ? accountRoom(m) : null;
        const remaining = room === null ? null : Math.max(0, room - (spent.get(id) ?? 0));
        out.set(id, remaining);
        return [id, m?.plan ?? null, m?.plan_usage ?? null, m?.plan_limit ?? null, m?.paygo_usage ?? null, m?.paygo_limit ?? null, remaining, m?.usage_read_at ?? null];
      });
      await sql`
        update tavily_accounts set
          plan = v.plan, plan_usage = v.plan_usage, plan_limit = v.plan_limit,
          paygo_usage = v.paygo_usage, paygo_limit = v.paygo_limit, remaining = v.remaining,
          usage_read_at = v.usage_read_at, updated_at = ${new Date().toISOString()}
        from ${jsonRows(this.dialect, FIGURE_COLUMNS, rows)}
        where tavily_accounts.id = v.id`.execute(ex);
    });
    return out;
  }

  /**
   * Keys that look like one Tavily account: identical account figures that carry information
   * (the same plan, the same non-zero plan usage below its limit, the same limits) read in the same refresh,
   * at least one of them in no declared account, and at most one declared account among them.
   */
  async suggestions(ex: Executor = this.db): Promise<Suggestion[]> {
    const groups = await ex
      .selectFrom('tavily_keys')
      .select((eb) => [
        'plan',
        'plan_usage',
        'plan_limit',
        'paygo_usage',
        'paygo_limit',
        'last_refreshed_at',
        eb.fn.countAll<number | string>().as('n'),
      ])
      .where('plan', 'is not', null)
      .where('plan_usage', '>', 0)
      // A plan used up to its limit says nothing: every free key that is spent reads 1,000 of 1,000.
      .where((eb) => eb.or([eb('plan_limit', 'is', null), eb('plan_usage', '<', eb.ref('plan_limit')), eb('paygo_usage', '>', 0)]))
      .where('last_refreshed_at', 'is not', null)
      .where('usage_read_at', 'is not', null)
      .groupBy(['plan', 'plan_usage', 'plan_limit', 'paygo_usage', 'paygo_limit', 'last_refreshed_at'])
      .having((eb) => eb.fn.countAll(), '>', 1)
      .having(sql`count(*)`, '>', sql`count(account_id)`)
      .having(sql`count(distinct account_id)`, '<=', 1)
      .orderBy('last_refreshed_at', 'desc')
      .limit(100)
      .execute();
    if (groups.length === 0) return [];
    const members = await ex
      .selectFrom('tavily_keys as k')
      .leftJoin('tavily_accounts as a', 'a.id', 'k.account_id')
      .select(['k.id', 'k.key_masked', 'k.label', 'k.account_id', 'a.name as account_name', 'k.plan', 'k.plan_usage', 'k.plan_limit', 'k.paygo_usage', 'k.paygo_limit', 'k.last_refreshed_at'])
      .where('k.last_refreshed_at', 'in', [...new Set(groups.map((g) => g.last_refreshed_at!))])
      .where('k.plan_usage', 'in', [...new Set(groups.map((g) => g.plan_usage!))])
      .orderBy('k.id')
      .execute();
    const sig = (r: { plan: string | null; plan_usage: number | null; plan_limit: number | null; paygo_usage: number | null; paygo_limit: number | null; last_refreshed_at: string | null }) =>
      JSON.stringify([r.plan, r.plan_usage, r.plan_limit, r.paygo_usage, r.paygo_limit, r.last_refreshed_at]);
    const bySig = new Map<string, typeof members>();
    for (const m of members) {
      const s = sig(m);
      const list = bySig.get(s);
      if (list) list.push(m);
      else bySig.set(s, [m]);
    }
    return groups.flatMap((g) => {
      const keys = bySig.get(sig(g));
      if (!keys || keys.length < 2) return [];
      const grouped = keys.find((k) => k.account_id !== null);
      return [{
        key_ids: keys.map((k) => k.id),
        keys: keys.map((k) => ({ id: k.id, key_masked: k.key_masked, label: k.label, account_id: k.account_id })),
        account_id: grouped?.account_id ?? null,
        account_name: grouped?.account_name ?? null,
        plan: g.plan!,
        plan_usage: g.plan_usage!,
        plan_limit: g.plan_limit,
        paygo_usage: g.paygo_usage,
        paygo_limit: g.paygo_limit,
        read_at: g.last_refreshed_at!,
      }];
    });
  }
}

import { type Expression, type ExpressionBuilder, type Kysely, type RawBuilder, type SqlBool, sql } from 'kysely';
import type { DialectKind } from '../database.js';
import { type ColumnSpec, jsonRows } from '../json-rows.js';
import { storableText } from '../../text.js';
import type { Database, KeyHealth, KeyRow, KeyStatus, NewKeyRow } from '../schema.js';

/** A Kysely handle or a transaction: every method takes either. */
export type Executor = Kysely<Database>;

export type KeySort = 'remaining_quota' | 'created_at';
export type SortOrder = 'asc' | 'desc';

export interface KeyListFilter {
  status?: KeyStatus;
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
  rows: KeyRow[];
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
}

/** The columns a successful refresh sets, with their SQL types. */
const FIGURE_COLUMNS = [
  ['status', 'text'],
  ['key_usage', 'double precision'],
  ['key_limit', 'double precision'],
  ['plan', 'text'],
  ['plan_usage', 'double precision'],
  ['plan_limit', 'double precision'],
  ['paygo_usage', 'double precision'],
  ['paygo_limit', 'double precision'],
  ['endpoint_usage', 'text'],
  ['remaining_quota', 'double precision'],
] as const satisfies ReadonlyArray<readonly [keyof KeyRow, string]>;

/** Figures from a successful /usage call, already reduced to what is stored. */
export type KeyFigures = Pick<KeyRow, (typeof FIGURE_COLUMNS)[number][0]>;

export type RefreshWrite =
  | ({ id: number; ok: true } & KeyFigures)
  | { id: number; ok: false; error: string; status: KeyHealth | null };

export interface KeySummary {
  by_status: Record<KeyStatus, number>;
  total: number;
  total_remaining: number;
  total_limit: number;
  unknown_quota: number;
  last_refreshed_at: string | null;
}

/** Remaining quota as a sortable, non-null value: unknown sorts below every known figure. */
const REMAINING_SORT = sql<number>`coalesce(remaining_quota, -1)`;

function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

function likePattern(text: string): string {
  return `%${text.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

function statusFilter(eb: ExpressionBuilder<Database, 'tavily_keys'>, status: KeyStatus): Expression<SqlBool> {
  if (status === 'disabled') return eb('disabled_at', 'is not', null);
  return eb.and([eb('disabled_at', 'is', null), eb('status', '=', status)]);
}

export interface KeyRepositoryOptions {
  /** Bound-parameter budget of one statement (SQLite allows 32,766, PostgreSQL 65,535). */
  maxParams?: number;
  /** Keys per set-based refresh statement. */
  batchRows?: number;
}

export class KeyRepository {
  private readonly maxParams: number;
  private readonly batchRows: number;

  constructor(
    private readonly db: Executor,
    private readonly dialect: DialectKind,
    opts: KeyRepositoryOptions = {},
  ) {
    this.maxParams = opts.maxParams ?? 30_000;
    this.batchRows = opts.batchRows ?? 50_000;
  }

  /** Of the given hashes, those already in the pool. */
  async existingHashes(hashes: readonly string[], ex: Executor = this.db): Promise<Set<string>> {
    const found = new Set<string>();
    for (const part of chunk(hashes, this.maxParams)) {
      const rows = await ex.selectFrom('tavily_keys').select('key_hash').where('key_hash', 'in', part).execute();
      for (const r of rows) found.add(r.key_hash);
    }
    return found;
  }

  /**
   * Inserts in multi-row statements; a hash that is already present is skipped, not an error.
   * Returns the id of each row inserted, by hash. Every row must set the same columns.
   */
  async insertMany(rows: readonly NewKeyRow[], ex: Executor = this.db): Promise<{ id: number; key_hash: string }[]> {
    if (rows.length === 0) return [];
    const perRow = Object.keys(rows[0]!).length;
    const inserted: { id: number; key_hash: string }[] = [];
    for (const part of chunk(rows, Math.max(1, Math.floor(this.maxParams / perRow)))) {
      const got = await ex
        .insertInto('tavily_keys')
        .values(part)
        .onConflict((oc) => oc.column('key_hash').doNothing())
        .returning(['id', 'key_hash'])
        .execute();
      inserted.push(...got);
    }
    return inserted;
  }

  async getById(id: number, ex: Executor = this.db): Promise<KeyRow | undefined> {
    return ex.selectFrom('tavily_keys').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async list(filter: KeyListFilter, ex: Executor = this.db): Promise<KeyPage> {
    let base = ex.selectFrom('tavily_keys');
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
    const sortExpr: RawBuilder<number | string> = filter.sort === 'remaining_quota' ? REMAINING_SORT : sql`created_at`;
    const desc = filter.order === 'desc';
    let page = base.selectAll();
    if (filter.cursor) {
      const { v, id } = filter.cursor;
      const cmp = desc ? '<' : '>';
      page = page.where((eb) =>
        eb.or([eb(sortExpr, cmp, v), eb.and([eb(sortExpr, '=', v), eb('id', cmp, id)])]),
      );
    }
    const [rows, count] = await Promise.all([
      page
        .orderBy(sortExpr, filter.order)
        .orderBy('id', filter.order)
        .limit(filter.limit + 1)
        .execute(),
      base.select((eb) => eb.fn.countAll<number | string>().as('n')).executeTakeFirstOrThrow(),
    ]);
    const more = rows.length > filter.limit;
    if (more) rows.pop();
    const last = rows.at(-1);
    const next =
      more && last
        ? { v: filter.sort === 'remaining_quota' ? (last.remaining_quota ?? -1) : last.created_at, id: last.id }
        : null;
    return { rows, next, total: Number(count.n) };
  }

  async update(
    id: number,
    patch: { label?: string | null; enabled?: boolean },
    ex: Executor = this.db,
  ): Promise<KeyRow | undefined> {
    const now = new Date().toISOString();
    return ex
      .updateTable('tavily_keys')
      .set((eb) => ({
        updated_at: now,
        ...(patch.label !== undefined ? { label: patch.label } : {}),
        ...(patch.enabled === true ? { disabled_at: null } : {}),
        // Disabling keeps the first disable time when already disabled.
        ...(patch.enabled === false ? { disabled_at: eb.fn.coalesce('disabled_at', eb.val(now)) } : {}),
      }))
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirst();
  }

  /** Enables or disables many keys in one statement per chunk; returns the ids that exist. */
  async setEnabled(ids: readonly number[], enabled: boolean, ex: Executor = this.db): Promise<number[]> {
    const now = new Date().toISOString();
    const done: number[] = [];
    for (const part of chunk(ids, this.maxParams)) {
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
    }
    return done;
  }

  async deleteMany(ids: readonly number[], ex: Executor = this.db): Promise<number[]> {
    const done: number[] = [];
    for (const part of chunk(ids, this.maxParams)) {
      const rows = await ex.deleteFrom('tavily_keys').where('id', 'in', part).returning('id').execute();
      done.push(...rows.map((r) => r.id));
    }
    return done;
  }

  /** Every key with what the gateway's in-memory pool needs. */
  async loadForPool(ids?: readonly number[], ex: Executor = this.db) {
    const q = ex
      .selectFrom('tavily_keys')
      .select(['id', 'key_ciphertext', 'key_masked', 'status', 'disabled_at', 'remaining_quota', 'last_used_at', 'cooldown_until'])
      .orderBy('id');
    if (!ids) return q.execute();
    const rows = [];
    for (const part of chunk(ids, this.maxParams)) rows.push(...(await q.where('id', 'in', part).execute()));
    return rows;
  }

  /** The refresh's single read: the keys to refresh, with only the columns it needs. */
  async loadForRefresh(
    opts: { ids?: readonly number[]; refreshedBefore?: string },
    ex: Executor = this.db,
  ): Promise<RefreshCandidate[]> {
    let q = ex
      .selectFrom('tavily_keys')
      .select(['id', 'key_ciphertext', 'key_masked', 'status', 'disabled_at'])
      .orderBy('id');
    if (opts.ids) q = q.where('id', 'in', opts.ids.length > 0 ? [...opts.ids] : [-1]);
    if (opts.refreshedBefore) {
      const before = opts.refreshedBefore;
      q = q.where((eb) => eb.or([eb('last_refreshed_at', 'is', null), eb('last_refreshed_at', '<', before)]));
    }
    return q.execute();
  }

  /**
   * Writes a refresh's outcomes in set-based statements: the outcomes travel as one JSON
   * parameter and a single `UPDATE … FROM` applies them — one statement for the successes
   * and one for the failures (per `batchRows` keys), never one per key. Call it in a transaction.
   */
  async applyRefresh(writes: readonly RefreshWrite[], at: string, ex: Executor = this.db): Promise<void> {
    const ok = writes.filter((w): w is Extract<RefreshWrite, { ok: true }> => w.ok);
    const failed = writes.filter((w): w is Extract<RefreshWrite, { ok: false }> => !w.ok);

    for (const part of chunk(ok, this.batchRows)) {
      const rows = part.map((w) => [w.id, ...FIGURE_COLUMNS.map(([c]) => w[c])]);
      await sql`
        update tavily_keys set
          ${sql.join(FIGURE_COLUMNS.map(([c]) => sql`${sql.ref(c)} = v.${sql.ref(c)}`))},
          last_refreshed_at = ${at},
          last_error = null,
          updated_at = ${at}
        from ${jsonRows(this.dialect, [['id', 'integer'], ...FIGURE_COLUMNS], rows)}
        where tavily_keys.id = v.id`.execute(ex);
    }

    for (const part of chunk(failed, this.batchRows)) {
      const rows = part.map((w) => [w.id, w.status, storableText(w.error)]);
      const cols: ColumnSpec[] = [['id', 'integer'], ['status', 'text'], ['last_error', 'text']];
      await sql`
        update tavily_keys set
          status = coalesce(v.status, tavily_keys.status),
          last_error = v.last_error,
          updated_at = ${at}
        from ${jsonRows(this.dialect, cols, rows)}
        where tavily_keys.id = v.id`.execute(ex);
    }
  }

  async summary(ex: Executor = this.db): Promise<KeySummary> {
    const rows = await ex
      .selectFrom('tavily_keys')
      .select((eb) => [
        'status',
        sql<number>`case when disabled_at is null then 0 else 1 end`.as('disabled'),
        eb.fn.countAll<number | string>().as('n'),
        eb.fn.sum<number | string | null>('remaining_quota').as('remaining'),
        eb.fn.sum<number | string | null>(eb.fn.coalesce('key_limit', 'plan_limit')).as('limit'),
        eb.fn.countAll<number | string>().filterWhere('remaining_quota', 'is', null).as('unknown'),
        eb.fn.max('last_refreshed_at').as('last'),
      ])
      .groupBy(['status', sql`case when disabled_at is null then 0 else 1 end`])
      .execute();
    const out: KeySummary = {
      by_status: { active: 0, disabled: 0, invalid: 0, exhausted: 0 },
      total: 0,
      total_remaining: 0,
      total_limit: 0,
      unknown_quota: 0,
      last_refreshed_at: null,
    };
    for (const r of rows) {
      const n = Number(r.n);
      const disabled = Number(r.disabled) === 1;
      out.total += n;
      out.by_status[disabled ? 'disabled' : r.status] += n;
      // What the pool can spend: keys that are enabled and not known to be dead.
      if (!disabled && r.status !== 'invalid') {
        out.total_remaining += Number(r.remaining ?? 0);
        out.total_limit += Number(r.limit ?? 0);
        out.unknown_quota += Number(r.unknown);
      }
      if (r.last && (out.last_refreshed_at === null || r.last > out.last_refreshed_at)) out.last_refreshed_at = r.last;
    }
    return out;
  }

  /** Sealed key texts for the export, in id order. */
  async sealedKeys(status: KeyStatus | undefined, ex: Executor = this.db): Promise<string[]> {
    let q = ex.selectFrom('tavily_keys').select('key_ciphertext').orderBy('id');
    if (status) q = q.where((eb) => statusFilter(eb, status));
    return (await q.execute()).map((r) => r.key_ciphertext);
  }
}

/** The status the API shows for a stored row. */
export function apiStatus(row: Pick<KeyRow, 'status' | 'disabled_at'>): KeyStatus {
  return row.disabled_at ? 'disabled' : row.status;
}

import { type Expression, type ExpressionBuilder, type Kysely, type RawBuilder, type SqlBool, sql } from 'kysely';
import type { DialectKind } from '../database.js';
import { type ColumnSpec, jsonRows } from '../json-rows.js';
import { Slicer, chunks, eachChunk } from '../../slices.js';
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

const chunk = chunks;

function likePattern(text: string): string {
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
  label: 'text',
  key_ciphertext: 'text',
  key_hash: 'text',
  key_masked: 'text',
  status: 'text',
  disabled_at: 'text',
  key_usage: 'double precision',
  key_limit: 'double precision',
  plan: 'text',
  plan_usage: 'double precision',
  plan_limit: 'double precision',
  paygo_usage: 'double precision',
  paygo_limit: 'double precision',
  endpoint_usage: 'text',
  remaining_quota: 'double precision',
  last_refreshed_at: 'text',
  last_error: 'text',
  last_used_at: 'text',
  cooldown_until: 'text',
  created_at: 'text',
  updated_at: 'text',
};

/**
 * The keys table. Bulk methods (insert, update, delete, load by many ids) work in statements
 * of a bounded size and yield to the event loop between them: 100,000 keys never hold the
 * loop (and the gateway's requests) for more than one statement's time.
 */
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
      .select(['id', 'key_ciphertext', 'key_masked', 'status', 'disabled_at', 'remaining_quota', 'last_used_at', 'cooldown_until'])
      .orderBy('id');
    return this.#readMany((f) => (f.ids ? q.where('id', 'in', f.ids) : q.where('id', '>', f.after).limit(f.limit)).execute(), ids);
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
    opts: { ids?: readonly number[]; refreshedBefore?: string },
    ex: Executor = this.db,
  ): Promise<RefreshCandidate[]> {
    let q = ex
      .selectFrom('tavily_keys')
      .select(['id', 'key_ciphertext', 'key_masked', 'status', 'disabled_at'])
      .orderBy('id');
    if (opts.refreshedBefore) {
      const before = opts.refreshedBefore;
      q = q.where((eb) => eb.or([eb('last_refreshed_at', 'is', null), eb('last_refreshed_at', '<', before)]));
    }
    if (opts.ids?.length === 0) return [];
    return this.#readMany((f) => (f.ids ? q.where('id', 'in', f.ids) : q.where('id', '>', f.after).limit(f.limit)).execute(), opts.ids);
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
      await slicer.breathe();
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

  /** One page of sealed key texts for the export: ids after `afterId`, in id order. */
  async sealedKeysPage(status: KeyStatus | undefined, afterId: number, limit: number, ex: Executor = this.db): Promise<{ id: number; key_ciphertext: string }[]> {
    let q = ex.selectFrom('tavily_keys').select(['id', 'key_ciphertext']).where('id', '>', afterId).orderBy('id').limit(limit);
    if (status) q = q.where((eb) => statusFilter(eb, status));
    return q.execute();
  }
}

/** The status the API shows for a stored row. */
export function apiStatus(row: Pick<KeyRow, 'status' | 'disabled_at'>): KeyStatus {
  return row.disabled_at ? 'disabled' : row.status;
}

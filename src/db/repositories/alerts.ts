import { type Kysely, type Selectable, sql } from 'kysely';
import type { AlertEvent, AlertType, NewAlertEvent } from '../../schemas/alert-events.js';
import type { DialectKind } from '../database.js';
import type { AlertSinkTable, Database, DeliveryState } from '../schema.js';
import { eachChunk } from '../../slices.js';
import { storableText } from '../../text.js';
import { jsonRows } from '../json-rows.js';

type Executor = Kysely<Database>;

/** A sink's row, its event types read (null: every type). */
export type SinkRow = Omit<Selectable<AlertSinkTable>, 'events'> & { events: AlertType[] | null };

export type NewSink = Pick<SinkRow, 'name' | 'kind' | 'target_ciphertext' | 'target_masked' | 'secret_ciphertext' | 'chat_id' | 'events'> & { disabled: boolean };

export type SinkPatch = Partial<NewSink>;

export interface DeliveryRow {
  id: number;
  event_id: number;
  sink_id: number;
  sink_name: string;
  state: DeliveryState;
  attempts: number;
  next_at: string;
  last_status: number | null;
  last_error: string | null;
  delivered_at: string | null;
}

export interface EventWithDeliveries extends AlertEvent {
  deliveries: DeliveryRow[];
}

/** A delivery claimed for sending: nobody else sends it until `next_at` (the claim) lapses. */
export interface Claimed {
  id: number;
  event_id: number;
  sink_id: number;
  attempts: number;
}

export type Settlement =
  | { id: number; state: 'delivered'; status: number | null }
  | { id: number; state: 'pending'; status: number | null; error: string; next_at: string }
  | { id: number; state: 'failed'; status: number | null; error: string };

/** Types a sink listens to are stored as JSON text; matched with LIKE on the quoted name. */
const eventsText = (events: AlertType[] | null) => (events === null ? null : JSON.stringify(events));

function sinkRow(r: Selectable<AlertSinkTable>): SinkRow {
  return { ...r, events: r.events === null ? null : (JSON.parse(r.events) as AlertType[]) };
}

/**
 * The alert tables: the outbox of events, their deliveries to each sink, the sinks, and the
 * conditions that hold now. Events are recorded in the caller's transaction (the change that
 * caused them), with a delivery row per sink that wants them, so that a commit cannot lose one.
 */
export class AlertRepository {
  constructor(
    private readonly db: Executor,
    private readonly dialect: DialectKind,
  ) {}

  /** Records events and their deliveries; returns how many events were written. */
  async record(events: readonly NewAlertEvent[], ex: Executor = this.db, at = new Date().toISOString()): Promise<number> {
    for (const e of events) {
      const row = await ex
        .insertInto('alert_events')
        .values({ type: e.type, created_at: at, summary: storableText(e.summary), data: JSON.stringify(e.data) })
        .returning('id')
        .executeTakeFirstOrThrow();
      // One statement per event, whatever the number of sinks.
      await sql`
        insert into alert_deliveries (event_id, sink_id, state, attempts, next_at, created_at)
        select ${row.id}, id, 'pending', 0, ${at}, ${at} from alert_sinks
        where disabled_at is null and (events is null or events like ${`%${JSON.stringify(e.type)}%`})`.execute(ex);
    }
    return events.length;
  }

  /**
   * Marks conditions as holding; returns those that did not hold before (the caller records
   * their event): an event fires once, and not again until its condition is cleared. Under
   * concurrency (two instances), the row's primary key lets only one of them win.
   */
  async raise(names: readonly string[], ex: Executor = this.db, at = new Date().toISOString()): Promise<string[]> {
    const parts = await eachChunk(names, 500, (part) =>
      ex
        .insertInto('alert_active')
        .values(part.map((name) => ({ name, since: at })))
        .onConflict((oc) => oc.column('name').doNothing())
        .returning('name')
        .execute(),
    );
    return parts.flat().map((r) => r.name);
  }

  /** Marks conditions as cleared; returns those that held. */
  async clear(names: readonly string[], ex: Executor = this.db): Promise<string[]> {
    const parts = await eachChunk(names, 500, (part) => ex.deleteFrom('alert_active').where('name', 'in', part).returning('name').execute());
    return parts.flat().map((r) => r.name);
  }

  /** The conditions that hold now whose names start with one of `prefixes` (one query). */
  async active(prefixes: string | readonly string[], ex: Executor = this.db): Promise<string[]> {
    const list = typeof prefixes === 'string' ? [prefixes] : prefixes;
    if (list.length === 0) return [];
    const like = (p: string) => sql<boolean>`name like ${`${p.replace(/[\\%_]/g, (c) => `\\${c}`)}%`} escape '\\'`;
    const rows = await ex
      .selectFrom('alert_active')
      .select('name')
      .where(sql<boolean>`(${sql.join(list.map(like), sql` or `)})`)
      .execute();
    return rows.map((r) => r.name);
  }

  /**
   * Claims up to `limit` deliveries that are due: their `next_at` moves to `leaseUntil`, so
   * that no other instance (and no later pass here) sends them while this one does. On
   * PostgreSQL the rows are locked with SKIP LOCKED: two instances never claim the same row.
   */
  async claimDue(now: string, leaseUntil: string, limit: number): Promise<Claimed[]> {
    // A read first: an idle outbox costs an indexed lookup, not a write.
    const any = await this.db.selectFrom('alert_deliveries').select('id').where('state', '=', 'pending').where('next_at', '<=', now).limit(1).executeTakeFirst();
    if (!any) return [];
    const lock = this.dialect === 'postgres' ? sql`for update skip locked` : sql``;
    const { rows } = await sql<Claimed>`
      update alert_deliveries set next_at = ${leaseUntil}, attempts = attempts + 1
      where id in (
        select d.id from alert_deliveries d
        where d.state = 'pending' and d.next_at <= ${now}
          and exists (select 1 from alert_sinks s where s.id = d.sink_id and s.disabled_at is null)
        order by d.id limit ${limit} ${lock})
      returning id, event_id, sink_id, attempts`.execute(this.db);
    return rows.map((r) => ({ ...r, id: Number(r.id), event_id: Number(r.event_id), sink_id: Number(r.sink_id), attempts: Number(r.attempts) }));
  }

  /** Stores the outcome of each claimed delivery, in one transaction. */
  async settle(outcomes: readonly Settlement[], at = new Date().toISOString()): Promise<void> {
    if (outcomes.length === 0) return;
    // One statement for a whole pass, whatever the number of deliveries.
    const rows = outcomes.map((o) => [
      o.id,
      o.state,
      o.state === 'pending' ? o.next_at : null,
      o.status,
      o.state === 'delivered' ? null : storableText(o.error).slice(0, 1000),
    ]);
    const cols = [['id', 'integer'], ['state', 'text'], ['next_at', 'text'], ['status', 'integer'], ['error', 'text']] as const;
    await sql`
      update alert_deliveries set
        state = v.state,
        next_at = coalesce(v.next_at, alert_deliveries.next_at),
        last_status = v.status,
        last_error = v.error,
        delivered_at = case when v.state = 'delivered' then ${at} else alert_deliveries.delivered_at end
      from ${jsonRows(this.dialect, cols, rows)}
      where alert_deliveries.id = v.id and alert_deliveries.state = 'pending'`.execute(this.db);
  }

  async eventsByIds(ids: readonly number[]): Promise<AlertEvent[]> {
    if (ids.length === 0) return [];
    const rows = await this.db.selectFrom('alert_events').selectAll().where('id', 'in', [...ids]).orderBy('id').execute();
    return rows.map((r) => ({ id: r.id, type: r.type as AlertType, created_at: r.created_at, summary: r.summary, data: JSON.parse(r.data) as Record<string, unknown> }));
  }

  /** Recent events, newest first, each with its deliveries. */
  async listEvents(f: { limit: number; before?: number; type?: AlertType }): Promise<{ events: EventWithDeliveries[]; next: number | null }> {
    let q = this.db.selectFrom('alert_events').selectAll().orderBy('id', 'desc').limit(f.limit + 1);
    if (f.before !== undefined) q = q.where('id', '<', f.before);
    if (f.type) q = q.where('type', '=', f.type);
    const rows = await q.execute();
    const page = rows.slice(0, f.limit);
    const deliveries =
      page.length === 0
        ? []
        : await this.db
            .selectFrom('alert_deliveries as d')
            .innerJoin('alert_sinks as s', 's.id', 'd.sink_id')
            .select(['d.id', 'd.event_id', 'd.sink_id', 's.name as sink_name', 'd.state', 'd.attempts', 'd.next_at', 'd.last_status', 'd.last_error', 'd.delivered_at'])
            .where('d.event_id', 'in', page.map((r) => r.id))
            .orderBy('d.id')
            .execute();
    const byEvent = new Map<number, DeliveryRow[]>();
    for (const d of deliveries) {
      const list = byEvent.get(d.event_id) ?? [];
      list.push({ ...d, attempts: Number(d.attempts) });
      byEvent.set(d.event_id, list);
    }
    return {
      events: page.map((r) => ({
        id: r.id,
        type: r.type as AlertType,
        created_at: r.created_at,
        summary: r.summary,
        data: JSON.parse(r.data) as Record<string, unknown>,
        deliveries: byEvent.get(r.id) ?? [],
      })),
      next: rows.length > f.limit ? page.at(-1)!.id : null,
    };
  }

  /** Deletes events (and their deliveries) recorded before `before`; returns how many. */
  async prune(before: string, ex: Executor = this.db): Promise<number> {
    const old = ex.selectFrom('alert_events').select('id').where('created_at', '<', before);
    await ex.deleteFrom('alert_deliveries').where('event_id', 'in', old).execute();
    const r = await ex.deleteFrom('alert_events').where('created_at', '<', before).executeTakeFirst();
    return Number(r.numDeletedRows ?? 0);
  }

  // Sinks

  async listSinks(ex: Executor = this.db): Promise<SinkRow[]> {
    const rows = await ex.selectFrom('alert_sinks').selectAll().orderBy('id').execute();
    return rows.map(sinkRow);
  }

  async getSink(id: number, ex: Executor = this.db): Promise<SinkRow | undefined> {
    const r = await ex.selectFrom('alert_sinks').selectAll().where('id', '=', id).executeTakeFirst();
    return r ? sinkRow(r) : undefined;
  }

  async sinksByIds(ids: readonly number[]): Promise<Map<number, SinkRow>> {
    if (ids.length === 0) return new Map();
    const rows = await this.db.selectFrom('alert_sinks').selectAll().where('id', 'in', [...ids]).execute();
    return new Map(rows.map((r) => [r.id, sinkRow(r)]));
  }

  /** Returns null when the name is taken. */
  async createSink(s: NewSink, ex: Executor = this.db): Promise<SinkRow | null> {
    const now = new Date().toISOString();
    const r = await ex
      .insertInto('alert_sinks')
      .values({
        name: s.name,
        kind: s.kind,
        target_ciphertext: s.target_ciphertext,
        target_masked: s.target_masked,
        secret_ciphertext: s.secret_ciphertext,
        chat_id: s.chat_id,
        events: eventsText(s.events),
        disabled_at: s.disabled ? now : null,
        created_at: now,
        updated_at: now,
      })
      .onConflict((oc) => oc.column('name').doNothing())
      .returningAll()
      .executeTakeFirst();
    return r ? sinkRow(r) : null;
  }

  async updateSink(id: number, p: SinkPatch, ex: Executor = this.db): Promise<SinkRow | 'not_found' | 'name_taken'> {
    const now = new Date().toISOString();
    if (p.name !== undefined) {
      const other = await ex.selectFrom('alert_sinks').select('id').where('name', '=', p.name).where('id', '<>', id).executeTakeFirst();
      if (other) return 'name_taken';
    }
    const r = await ex
      .updateTable('alert_sinks')
      .set({
        ...(p.name !== undefined ? { name: p.name } : {}),
        ...(p.kind !== undefined ? { kind: p.kind } : {}),
        ...(p.target_ciphertext !== undefined ? { target_ciphertext: p.target_ciphertext, target_masked: p.target_masked! } : {}),
        ...(p.secret_ciphertext !== undefined ? { secret_ciphertext: p.secret_ciphertext } : {}),
        ...(p.chat_id !== undefined ? { chat_id: p.chat_id } : {}),
        ...(p.events !== undefined ? { events: eventsText(p.events) } : {}),
        ...(p.disabled !== undefined ? { disabled_at: p.disabled ? sql<string>`coalesce(disabled_at, ${now})` : null } : {}),
        updated_at: now,
      })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirst();
    return r ? sinkRow(r) : 'not_found';
  }

  async deleteSink(id: number, ex: Executor = this.db): Promise<boolean> {
    await ex.deleteFrom('alert_deliveries').where('sink_id', '=', id).execute();
    const r = await ex.deleteFrom('alert_sinks').where('id', '=', id).executeTakeFirst();
    return Number(r.numDeletedRows ?? 0) > 0;
  }
}

import { sql } from 'kysely';
import type { Db, DialectKind } from '../db/database.js';
import { jsonRows } from '../db/json-rows.js';
import { chunks } from '../slices.js';
import type { KeyHealth } from '../db/schema.js';
import { type KeyRef, type NewAlertEvent, keysEvent } from '../schemas/alert-events.js';

export interface HealthChange {
  id: number;
  /** The health about to be written; null keeps the stored one. */
  status: KeyHealth | null;
  reason?: string | null;
}

/**
 * The events of key health changes about to be written, in the writer's transaction: keys
 * whose stored health differs from the new one, grouped by what they became (200 keys found
 * invalid make one event). Two reads, neither of every written key: the keys stored as not
 * active (few, in a healthy pool: the only ones that can become active again), and the keys
 * about to be written as invalid or exhausted. On PostgreSQL the rows read are locked until the
 * transaction ends, so that two instances writing the same change cannot both announce it.
 */
export async function healthEvents(ex: Db, dialect: DialectKind, changes: readonly HealthChange[], source: string): Promise<NewAlertEvent[]> {
  const wanted = changes.filter((c) => c.status !== null);
  if (wanted.length === 0) return [];
  const lock = dialect === 'postgres' ? sql` for update` : sql``;
  type Row = { id: number; status: KeyHealth; key_masked: string; label: string | null };
  const stored = new Map<number, Row>();
  if (wanted.some((c) => c.status === 'active')) {
    const { rows } = await sql<Row>`select id, status, key_masked, label from tavily_keys where status <> 'active'${lock}`.execute(ex);
    for (const r of rows) stored.set(Number(r.id), r);
  }
  const bad = wanted.filter((c) => c.status !== 'active' && !stored.has(c.id)).map((c) => [c.id]);
  for (const part of chunks(bad, 5000)) {
    const { rows } = await sql<Row>`
      select id, status, key_masked, label from tavily_keys
      where id in (select v.id from ${jsonRows(dialect, [['id', 'integer']], part)})${lock}`.execute(ex);
    for (const r of rows) stored.set(Number(r.id), r);
  }
  const byType: Record<'key.invalid' | 'key.exhausted' | 'key.active', KeyRef[]> = { 'key.invalid': [], 'key.exhausted': [], 'key.active': [] };
  for (const c of wanted) {
    const r = stored.get(c.id);
    // Not read: stored as active, and written as active.
    if (!r || r.status === c.status) continue;
    const type = c.status === 'invalid' ? 'key.invalid' : c.status === 'exhausted' ? 'key.exhausted' : 'key.active';
    byType[type].push({ id: c.id, key_masked: r.key_masked, label: r.label, ...(c.reason ? { reason: c.reason } : {}) });
  }
  return (Object.entries(byType) as Array<[keyof typeof byType, KeyRef[]]>).filter(([, keys]) => keys.length > 0).map(([type, keys]) => keysEvent(type, keys, source));
}

import { sql } from 'kysely';
import type { Db, DialectKind } from '../db/database.js';
import { jsonRows } from '../db/json-rows.js';
import type { KeyHealth } from '../db/schema.js';
import { type KeyRef, type NewAlertEvent, keysEvent } from './events.js';

export interface HealthChange {
  id: number;
  /** The health about to be written; null keeps the stored one. */
  status: KeyHealth | null;
  reason?: string | null;
}

/**
 * The events of key health changes about to be written, in the writer's transaction: keys
 * whose stored health differs from the new one, grouped by what they became (200 keys found
 * invalid make one event). On PostgreSQL the rows are locked until the transaction ends, so
 * that two instances writing the same change cannot both announce it.
 */
export async function healthEvents(ex: Db, dialect: DialectKind, changes: readonly HealthChange[], source: string): Promise<NewAlertEvent[]> {
  const wanted = changes.filter((c) => c.status !== null);
  if (wanted.length === 0) return [];
  const next = new Map(wanted.map((c) => [c.id, c]));
  const byType: Record<'key.invalid' | 'key.exhausted' | 'key.active', KeyRef[]> = { 'key.invalid': [], 'key.exhausted': [], 'key.active': [] };
  const lock = dialect === 'postgres' ? sql`for update of k` : sql``;
  for (let i = 0; i < wanted.length; i += 5000) {
    const ids = wanted.slice(i, i + 5000).map((c) => [c.id]);
    const { rows } = await sql<{ id: number; status: KeyHealth; key_masked: string; label: string | null }>`
      select k.id, k.status, k.key_masked, k.label from tavily_keys k
      join ${jsonRows(dialect, [['id', 'integer']], ids)} on k.id = v.id
      order by k.id ${lock}`.execute(ex);
    for (const r of rows) {
      const c = next.get(Number(r.id))!;
      if (c.status === r.status) continue;
      const type = c.status === 'invalid' ? 'key.invalid' : c.status === 'exhausted' ? 'key.exhausted' : 'key.active';
      byType[type].push({ id: Number(r.id), key_masked: r.key_masked, label: r.label, ...(c.reason ? { reason: c.reason } : {}) });
    }
  }
  return (Object.entries(byType) as Array<[keyof typeof byType, KeyRef[]]>).filter(([, keys]) => keys.length > 0).map(([type, keys]) => keysEvent(type, keys, source));
}

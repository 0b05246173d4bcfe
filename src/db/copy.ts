import { sql } from 'kysely';
import type { Db } from './database.js';
import type { Database } from './schema.js';

/**
 * Tables copied, in an order that keeps references valid (logs and tasks point at keys and
 * tokens). Settings carry the ENCRYPTION_KEY's fingerprint, which travels with the sealed keys.
 */
export const COPIED_TABLES = ['settings', 'tavily_accounts', 'tavily_keys', 'client_tokens', 'request_logs', 'research_tasks', 'alert_sinks', 'alert_events', 'alert_deliveries', 'alert_active', 'audit_log'] as const satisfies readonly (keyof Database)[];
export type CopiedTable = (typeof COPIED_TABLES)[number];

/** Tables whose id is a sequence on PostgreSQL: moved past the copied ids. */
const SERIAL: readonly CopiedTable[] = ['tavily_accounts', 'tavily_keys', 'client_tokens', 'request_logs', 'alert_sinks', 'alert_events', 'alert_deliveries', 'audit_log'];

export interface TableCopy {
  table: CopiedTable;
  read: number;
  inserted: number;
  /** Rows the target already had (a re-run, or the same key or token added there). */
  skipped: number;
}

export interface CopyOptions {
  /** Rows per INSERT statement and per transaction. */
  batch?: number;
  onProgress?: (table: CopiedTable, done: number) => void;
}

/**
 * Copies every row of the gateway's tables from one database to another, keeping ids (so a
 * log row still names its key and token). Idempotent: a row whose id, key or token the target
 * already holds is skipped, so the copy can be run again. Rows are read and written in
 * batches, one transaction per batch. The target must be migrated already.
 */
export async function copyTables(from: Db, to: Db, opts: CopyOptions = {}): Promise<TableCopy[]> {
  const batch = opts.batch ?? 2000;
  const out: TableCopy[] = [];
  for (const table of COPIED_TABLES) {
    const key = table === 'research_tasks' ? 'request_id' : table === 'settings' || table === 'alert_active' ? 'name' : 'id';
    const counts: TableCopy = { table, read: 0, inserted: 0, skipped: 0 };
    let after: number | string | null = null;
    for (;;) {
      let q = from.selectFrom(table).selectAll().orderBy(key).limit(batch);
      if (after !== null) q = q.where(key, '>', after as never);
      const rows = (await q.execute()) as Record<string, unknown>[];
      if (rows.length === 0) break;
      const inserted = await to.transaction().execute(async (trx) => {
        const r = await trx
          .insertInto(table)
          .values(rows as never)
          .onConflict((oc) => oc.doNothing())
          .executeTakeFirst();
        return Number(r.numInsertedOrUpdatedRows ?? 0);
      });
      counts.read += rows.length;
      counts.inserted += inserted;
      counts.skipped += rows.length - inserted;
      after = rows.at(-1)![key] as number | string;
      opts.onProgress?.(table, counts.read);
    }
    out.push(counts);
  }
  return out;
}

/** Moves PostgreSQL's id sequences past the highest id, so that new rows do not collide with copied ones. */
export async function advanceSequences(pg: Db): Promise<void> {
  for (const table of SERIAL) {
    await sql`select setval(pg_get_serial_sequence(${table}, 'id'), greatest((select coalesce(max(id), 0) from ${sql.table(table)}), 1), (select count(*) > 0 from ${sql.table(table)}))`.execute(pg);
  }
}

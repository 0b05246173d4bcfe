import { type Kysely, type Migration } from 'kysely';
import type { DialectKind } from '../dialect.js';

export const migration = (dialect: DialectKind): Migration => ({
  async up(db: Kysely<any>) {
    await db.schema
      .createTable('tavily_accounts')
      .addColumn('id', dialect === 'postgres' ? 'serial' : 'integer', (c) =>
        dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement(),
      )
      .addColumn('name', 'text', (c) => c.notNull().unique())
      .addColumn('plan', 'text')
      .addColumn('plan_usage', 'double precision')
      .addColumn('plan_limit', 'double precision')
      .addColumn('paygo_usage', 'double precision')
      .addColumn('paygo_limit', 'double precision')
      .addColumn('remaining', 'double precision')
      .addColumn('usage_read_at', 'text')
      .addColumn('last_refreshed_at', 'text')
      .addColumn('cycle_started_at', 'text')
      .addColumn('drift_tavily', 'double precision')
      .addColumn('drift_pool', 'double precision')
      .addColumn('drift_since', 'text')
      .addColumn('drift_at', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
    // Deleting an account leaves its keys, each its own account again.
    await db.schema
      .alterTable('tavily_keys')
      .addColumn('account_id', 'integer', (c) => c.references('tavily_accounts.id').onDelete('set null'))
      .execute();
    for (const [col, type] of [
      ['usage_read_at', 'text'],
      ['cycle_started_at', 'text'],
      ['drift_tavily', 'double precision'],
      ['drift_pool', 'double precision'],
      ['drift_since', 'text'],
      ['drift_at', 'text'],
    ] as const) {
      await db.schema.alterTable('tavily_keys').addColumn(col, type).execute();
    }
    // What the pool spent through a key between two /usage checks: a range per key.
    await db.schema.createIndex('request_logs_key_ts_idx').on('request_logs').columns(['key_id', 'ts']).execute();
  },
  async down(db: Kysely<any>) {
    await db.schema.dropIndex('request_logs_key_ts_idx').execute();
    for (const col of ['drift_at', 'drift_since', 'drift_pool', 'drift_tavily', 'cycle_started_at', 'usage_read_at', 'account_id']) {
      await db.schema.alterTable('tavily_keys').dropColumn(col).execute();
    }
    await db.schema.dropTable('tavily_accounts').execute();
  },
});

import { type Kysely, type Migration, sql } from 'kysely';
import type { DialectKind } from '../dialect.js';

export const migration = (dialect: DialectKind): Migration => ({
  async up(db: Kysely<any>) {
    await db.schema
      .createTable('tavily_keys')
      .addColumn('id', dialect === 'postgres' ? 'serial' : 'integer', (c) =>
        dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement(),
      )
      .addColumn('label', 'text')
      .addColumn('key_ciphertext', 'text', (c) => c.notNull())
      .addColumn('key_hash', 'text', (c) => c.notNull().unique())
      .addColumn('key_masked', 'text', (c) => c.notNull())
      .addColumn('status', 'text', (c) =>
        c.notNull().defaultTo('active').check(sql`status in ('active', 'invalid', 'exhausted')`),
      )
      .addColumn('disabled_at', 'text')
      .addColumn('key_usage', 'double precision')
      .addColumn('key_limit', 'double precision')
      .addColumn('plan', 'text')
      .addColumn('plan_usage', 'double precision')
      .addColumn('plan_limit', 'double precision')
      .addColumn('paygo_usage', 'double precision')
      .addColumn('paygo_limit', 'double precision')
      .addColumn('endpoint_usage', 'text')
      .addColumn('remaining_quota', 'double precision')
      .addColumn('last_refreshed_at', 'text')
      .addColumn('last_error', 'text')
      .addColumn('last_used_at', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
    // No secondary indexes: admin lists sort on expressions an index would not serve, and at
    // 100,000 keys a scan costs milliseconds, while every index slows the refresh's batched write.
  },
  async down(db: Kysely<any>) {
    await db.schema.dropTable('tavily_keys').execute();
  },
});

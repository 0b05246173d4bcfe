import { type Kysely, type Migration } from 'kysely';
import type { DialectKind } from '../dialect.js';

export const migration = (dialect: DialectKind): Migration => ({
  async up(db: Kysely<any>) {
    const id = (big: boolean) => (dialect === 'postgres' ? (big ? 'bigserial' : 'serial') : 'integer');
    await db.schema
      .createTable('client_tokens')
      .addColumn('id', id(false), (c) => (dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement()))
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('token_hash', 'text', (c) => c.notNull().unique())
      .addColumn('token_prefix', 'text', (c) => c.notNull())
      .addColumn('monthly_budget', 'double precision')
      .addColumn('rpm_limit', 'integer')
      .addColumn('spent_month', 'text', (c) => c.notNull())
      .addColumn('month_spent', 'double precision', (c) => c.notNull().defaultTo(0))
      .addColumn('revoked_at', 'text')
      .addColumn('last_used_at', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('request_logs')
      .addColumn('id', id(true), (c) => (dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement()))
      .addColumn('ts', 'text', (c) => c.notNull())
      .addColumn('token_id', 'integer')
      .addColumn('key_id', 'integer')
      .addColumn('endpoint', 'text', (c) => c.notNull())
      .addColumn('status', 'integer', (c) => c.notNull())
      .addColumn('attempts', 'integer', (c) => c.notNull())
      .addColumn('latency_ms', 'double precision')
      .addColumn('credits', 'double precision', (c) => c.notNull().defaultTo(0))
      .addColumn('request_id', 'text')
      .addColumn('error', 'text')
      .execute();
    // Time filters, retention pruning and the hourly/daily stats all range over ts.
    await db.schema.createIndex('request_logs_ts_idx').on('request_logs').column('ts').execute();
    await db.schema
      .createTable('research_tasks')
      .addColumn('request_id', 'text', (c) => c.primaryKey())
      .addColumn('key_id', 'integer', (c) => c.notNull())
      .addColumn('token_id', 'integer')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('expires_at', 'text', (c) => c.notNull())
      // Research is billed when it completes: charged once, on the first poll that sees it done.
      .addColumn('charged_at', 'text')
      .execute();
  },
  async down(db: Kysely<any>) {
    await db.schema.dropTable('research_tasks').execute();
    await db.schema.dropTable('request_logs').execute();
    await db.schema.dropTable('client_tokens').execute();
  },
});

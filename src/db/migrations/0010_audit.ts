import { type Kysely, type Migration } from 'kysely';
import type { DialectKind } from '../dialect.js';

export const migration = (dialect: DialectKind): Migration => ({
  async up(db: Kysely<any>) {
    // Who changed what: written in the transaction of the change. Never a key or a token.
    await db.schema
      .createTable('audit_log')
      .addColumn('id', dialect === 'postgres' ? 'serial' : 'integer', (c) => (dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement()))
      .addColumn('at', 'text', (c) => c.notNull())
      .addColumn('action', 'text', (c) => c.notNull())
      .addColumn('targets', 'text')
      .addColumn('outcome', 'text', (c) => c.notNull())
      .addColumn('remote_addr', 'text')
      .addColumn('user_agent', 'text')
      .execute();
    await db.schema.createIndex('audit_log_at_idx').on('audit_log').column('at').execute();
  },
  async down(db: Kysely<any>) {
    await db.schema.dropTable('audit_log').execute();
  },
});

import { type CreateTableBuilder, type Kysely, type Migration, sql } from 'kysely';
import type { DialectKind } from '../dialect.js';

export const migration = (dialect: DialectKind): Migration => ({
  async up(db: Kysely<any>) {
    const id = (t: CreateTableBuilder<string>) =>
      t.addColumn('id', dialect === 'postgres' ? 'serial' : 'integer', (c) => (dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement()));
    // Where alerts go. The target (a webhook URL, a Slack URL, a Telegram bot token) is a
    // credential: sealed like the keys, shown masked.
    await id(db.schema.createTable('alert_sinks'))
      .addColumn('name', 'text', (c) => c.notNull().unique())
      .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('webhook', 'slack', 'telegram')`))
      .addColumn('target_ciphertext', 'text', (c) => c.notNull())
      .addColumn('target_masked', 'text', (c) => c.notNull())
      .addColumn('secret_ciphertext', 'text')
      .addColumn('chat_id', 'text')
      .addColumn('events', 'text')
      .addColumn('disabled_at', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
    // The outbox: written in the transaction of the change that caused the event.
    await id(db.schema.createTable('alert_events'))
      .addColumn('type', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('summary', 'text', (c) => c.notNull())
      .addColumn('data', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('alert_events_created_idx').on('alert_events').column('created_at').execute();
    await id(db.schema.createTable('alert_deliveries'))
      .addColumn('event_id', 'integer', (c) => c.notNull().references('alert_events.id').onDelete('cascade'))
      .addColumn('sink_id', 'integer', (c) => c.notNull().references('alert_sinks.id').onDelete('cascade'))
      .addColumn('state', 'text', (c) => c.notNull().defaultTo('pending').check(sql`state in ('pending', 'delivered', 'failed')`))
      .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('next_at', 'text', (c) => c.notNull())
      .addColumn('last_status', 'integer')
      .addColumn('last_error', 'text')
      .addColumn('delivered_at', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('alert_deliveries_due_idx').on('alert_deliveries').columns(['state', 'next_at']).execute();
    await db.schema.createIndex('alert_deliveries_event_idx').on('alert_deliveries').column('event_id').execute();
    // Conditions that hold now (a row per condition): an event fires when its row is
    // inserted, and not again until the row is deleted (the condition cleared).
    await db.schema
      .createTable('alert_active')
      .addColumn('name', 'text', (c) => c.primaryKey())
      .addColumn('since', 'text', (c) => c.notNull())
      .execute();
  },
  async down(db: Kysely<any>) {
    for (const t of ['alert_active', 'alert_deliveries', 'alert_events', 'alert_sinks']) await db.schema.dropTable(t).execute();
  },
});

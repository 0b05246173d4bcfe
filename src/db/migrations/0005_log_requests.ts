import { type Kysely, type Migration } from 'kysely';

export const migration = (): Migration => ({
  async up(db: Kysely<any>) {
    // Refusals (a client over its budget or RPM) are logged as one row per token, endpoint
    // and status per window: the row says how many requests it stands for.
    await db.schema.alterTable('request_logs').addColumn('requests', 'integer', (c) => c.notNull().defaultTo(1)).execute();
  },
  async down(db: Kysely<any>) {
    await db.schema.alterTable('request_logs').dropColumn('requests').execute();
  },
});

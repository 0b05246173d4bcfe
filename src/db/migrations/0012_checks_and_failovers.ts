import { type Kysely, type Migration, sql } from 'kysely';

export const migration = (): Migration => ({
  async up(db: Kysely<any>) {
    // The time of a key's last check whatever it answered (a 401 or 429 is a check too),
    // and the keys a request tried before the one that answered it.
    await db.schema.alterTable('tavily_keys').addColumn('last_checked_at', 'text').execute();
    await sql`update tavily_keys set last_checked_at = last_refreshed_at`.execute(db);
    await db.schema.alterTable('request_logs').addColumn('failovers', 'text').execute();
  },
  async down(db: Kysely<any>) {
    await db.schema.alterTable('request_logs').dropColumn('failovers').execute();
    await db.schema.alterTable('tavily_keys').dropColumn('last_checked_at').execute();
  },
});

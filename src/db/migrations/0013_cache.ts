import type { Kysely, Migration } from 'kysely';

export const migration = (): Migration => ({
  async up(db: Kysely<any>) {
    // A token's answer cache (seconds an answer may be reused; null: its door's default), and
    // whether a logged request was served from the cache, with the credits that saved.
    await db.schema.alterTable('client_tokens').addColumn('cache_ttl_s', 'integer').execute();
    await db.schema.alterTable('request_logs').addColumn('cache', 'text').execute();
    await db.schema.alterTable('request_logs').addColumn('credits_saved', 'double precision', (c) => c.notNull().defaultTo(0)).execute();
  },
  async down(db: Kysely<any>) {
    await db.schema.alterTable('request_logs').dropColumn('credits_saved').execute();
    await db.schema.alterTable('request_logs').dropColumn('cache').execute();
    await db.schema.alterTable('client_tokens').dropColumn('cache_ttl_s').execute();
  },
});

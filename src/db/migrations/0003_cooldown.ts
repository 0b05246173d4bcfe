import { type Kysely, type Migration } from 'kysely';

export const migration = (): Migration => ({
  async up(db: Kysely<any>) {
    // A key resting after a 429, kept in the database so that every instance (and a
    // restarted one) skips it until then.
    await db.schema.alterTable('tavily_keys').addColumn('cooldown_until', 'text').execute();
  },
  async down(db: Kysely<any>) {
    await db.schema.alterTable('tavily_keys').dropColumn('cooldown_until').execute();
  },
});

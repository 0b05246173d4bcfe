import { type Kysely, type Migration } from 'kysely';

export const migration = (): Migration => ({
  async up(db: Kysely<any>) {
    // A key rests after a 429 or after failures in a row: the key object says which.
    await db.schema.alterTable('tavily_keys').addColumn('cooldown_reason', 'text').execute();
  },
  async down(db: Kysely<any>) {
    await db.schema.alterTable('tavily_keys').dropColumn('cooldown_reason').execute();
  },
});

import { type Kysely, type Migration } from 'kysely';

export const migration = (): Migration => ({
  async up(db: Kysely<any>) {
    // Facts about the deployment every instance checks at start (the ENCRYPTION_KEY's fingerprint).
    await db.schema
      .createTable('settings')
      .addColumn('name', 'text', (c) => c.primaryKey())
      .addColumn('value', 'text', (c) => c.notNull())
      .execute();
  },
  async down(db: Kysely<any>) {
    await db.schema.dropTable('settings').execute();
  },
});

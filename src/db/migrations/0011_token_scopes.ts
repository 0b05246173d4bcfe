import { type Kysely, type Migration } from 'kysely';

export const migration = (): Migration => ({
  async up(db: Kysely<any>) {
    // What a client token may do: endpoints, networks (JSON arrays), an expiry, caps (JSON).
    for (const col of ['endpoints', 'networks', 'expires_at', 'caps']) {
      await db.schema.alterTable('client_tokens').addColumn(col, 'text').execute();
    }
  },
  async down(db: Kysely<any>) {
    for (const col of ['caps', 'expires_at', 'networks', 'endpoints']) await db.schema.alterTable('client_tokens').dropColumn(col).execute();
  },
});

import { type Kysely, type Migration } from 'kysely';

export const migration = (): Migration => ({
  async up(db: Kysely<any>) {
    // Which door a request came through: the REST routes or the MCP endpoint.
    await db.schema.alterTable('request_logs').addColumn('via', 'text', (c) => c.notNull().defaultTo('rest')).execute();
  },
  async down(db: Kysely<any>) {
    await db.schema.alterTable('request_logs').dropColumn('via').execute();
  },
});

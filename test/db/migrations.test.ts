import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sql } from 'kysely';
import { openDatabase } from '../../src/db/database.js';
import { dialects } from '../support/db.js';

const postgres = dialects.find((d) => d.name === 'postgres')!;

if (postgres.skip) test('migrations in separate PostgreSQL schemas', { skip: postgres.skip }, () => {});
else
  test('migrations in separate PostgreSQL schemas: a new schema is migrated even when another already is', async () => {
    const a = await postgres.create();
    const b = await postgres.create();
    try {
      const first = await openDatabase(a.config, a.open);
      await first.close();
      // Kysely, unless told the schema, finds the other schema's migration tables and skips its own.
      const second = await openDatabase(b.config, b.open);
      try {
        const { rows } = await sql<{ n: number }>`select count(*) as n from kysely_migration`.execute(second.db);
        assert.ok(Number(rows[0]!.n) >= 4, 'every migration is recorded in the new schema');
        const keys = await second.db.selectFrom('tavily_keys').select('id').execute();
        assert.deepEqual(keys, []);
      } finally {
        await second.close();
      }
      await assert.rejects(openDatabase(b.config, { pgSearchPath: 'no_such_schema_here' }), /search_path names no schema that exists/);
    } finally {
      await a.cleanup();
      await b.cleanup();
    }
  });

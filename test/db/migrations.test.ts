import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sql } from 'kysely';
import { openDatabase } from '../../src/db/database.js';
import { type TestDatabase, dialects } from '../support/db.js';

const postgres = dialects.find((d) => d.name === 'postgres')!;

/** A test on two PostgreSQL schemas of its own, dropped after it; one skipped test, saying why, where there is no PostgreSQL. */
function onTwoSchemas(title: string, body: (a: TestDatabase, b: TestDatabase) => Promise<void>): void {
  if (postgres.skip) {
    test(title, { skip: postgres.skip }, () => {});
    return;
  }
  test(title, async () => {
    const a = await postgres.create();
    const b = await postgres.create();
    try {
      await body(a, b);
    } finally {
      await a.cleanup();
      await b.cleanup();
    }
  });
}

onTwoSchemas('migrations in separate PostgreSQL schemas: a new schema is migrated even when another already is', async (a, b) => {
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
});

onTwoSchemas('introspection reads the current PostgreSQL schema only: another schema’s tables are neither listed nor read', async (mine, other) => {
  const theirs = await openDatabase(other.config, other.open);
  await sql`create table only_elsewhere (id integer primary key, note text)`.execute(theirs.db);
  await theirs.close();
  const handle = await openDatabase(mine.config, mine.open);
  try {
    const tables = await handle.db.introspection.getTables();
    const names = tables.map((t) => t.name);
    assert.ok(names.includes('tavily_keys'), names.join(', '));
    assert.ok(!names.includes('only_elsewhere'), `another schema's table is listed: ${names.join(', ')}`);
    assert.deepEqual(new Set(tables.map((t) => t.schema)), new Set([mine.open.pgSearchPath]));
    assert.ok(!names.includes('kysely_migration'), 'the migration tables only when asked for');
    assert.ok((await handle.db.introspection.getTables({ withInternalKyselyTables: true })).some((t) => t.name === 'kysely_migration'));
    const keys = tables.find((t) => t.name === 'tavily_keys')!;
    const id = keys.columns.find((c) => c.name === 'id')!;
    assert.deepEqual([id.isAutoIncrementing, id.isNullable, id.dataType], [true, false, 'int4']);
    assert.equal(keys.columns.find((c) => c.name === 'label')?.isNullable, true);
  } finally {
    await handle.close();
  }
});

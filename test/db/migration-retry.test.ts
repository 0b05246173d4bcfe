import assert from 'node:assert/strict';
import path from 'node:path';
import fs from 'node:fs';
import { test } from 'node:test';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, type KyselyPlugin, SqliteDialect, type PluginTransformResultArgs, type QueryResult, type UnknownRow } from 'kysely';
import { migrateToLatest } from '../../src/db/migrations.js';
import { tempDir } from '../support/db.js';

/**
 * Fails the first `n` reads as PostgreSQL does when another deployment's schema is dropped while
 * Kysely reads every schema (Kysely's own recovery re-checks after a failed create, so the
 * failure is put on a read that nothing recovers).
 */
class SchemaDroppedElsewhere implements KyselyPlugin {
  constructor(
    private n: number,
    private readonly message = 'schema "t_someone_else" does not exist',
    private readonly code = '3F000',
  ) {}
  transformQuery(args: Parameters<KyselyPlugin['transformQuery']>[0]) {
    if (args.node.kind === 'SelectQueryNode' && this.n-- > 0) throw Object.assign(new Error(this.message), { code: this.code });
    return args.node;
  }
  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return args.result;
  }
}

test('a schema dropped elsewhere while the migrations look for their tables: read again, and migrate', async () => {
  const dir = tempDir();
  const sqlite = new SqliteDatabase(path.join(dir, 'm.db'));
  const db = new Kysely<any>({ dialect: new SqliteDialect({ database: sqlite }) });
  try {
    const applied = await migrateToLatest(db.withPlugin(new SchemaDroppedElsewhere(2)), 'sqlite');
    // A column dropped elsewhere, as PostgreSQL says it.
    const again = new Kysely<any>({ dialect: new SqliteDialect({ database: new SqliteDatabase(path.join(dir, 'c.db')) }) });
    assert.ok((await migrateToLatest(again.withPlugin(new SchemaDroppedElsewhere(1, 'column "disabled_at" of relation "tavily_keys" does not exist', '42703')), 'sqlite')).length >= 12);
    await again.destroy();
    assert.ok(applied.includes('0001_tavily_keys') && applied.length >= 12, `applied: ${applied.join(', ')}`);
    // Any other failure is not retried.
    const other = new Kysely<any>({ dialect: new SqliteDialect({ database: new SqliteDatabase(path.join(dir, 'n.db')) }) });
    await assert.rejects(migrateToLatest(other.withPlugin(new SchemaDroppedElsewhere(1, 'disk I/O error', 'SQLITE_IOERR')), 'sqlite'), /disk I\/O error/);
    await other.destroy();
  } finally {
    await db.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

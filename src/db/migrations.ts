import { type Kysely, type Migration, type MigrationProvider, Migrator, sql } from 'kysely';
import type { DialectKind } from './dialect.js';
import { migration as m0001 } from './migrations/0001_tavily_keys.js';
import { migration as m0002 } from './migrations/0002_gateway.js';
import { migration as m0003 } from './migrations/0003_cooldown.js';
import { migration as m0004 } from './migrations/0004_settings.js';
import { migration as m0005 } from './migrations/0005_log_requests.js';
import { migration as m0006 } from './migrations/0006_cooldown_reason.js';
import { migration as m0007 } from './migrations/0007_log_via.js';
import { migration as m0008 } from './migrations/0008_accounts.js';
import { migration as m0009 } from './migrations/0009_alerts.js';
import { migration as m0010 } from './migrations/0010_audit.js';
import { migration as m0011 } from './migrations/0011_token_scopes.js';
import { migration as m0012 } from './migrations/0012_checks_and_failovers.js';
import { migration as m0013 } from './migrations/0013_cache.js';

/**
 * Every migration, one file each under migrations/, in the order they run (by name). A new one is
 * a new file with the next number, added here; a landed one never changes (its name is recorded
 * in the database as applied).
 */
function migrations(dialect: DialectKind): Record<string, Migration> {
  return {
    '0001_tavily_keys': m0001(dialect),
    '0002_gateway': m0002(dialect),
    '0003_cooldown': m0003(),
    '0004_settings': m0004(),
    '0005_log_requests': m0005(),
    '0006_cooldown_reason': m0006(),
    '0007_log_via': m0007(),
    '0008_accounts': m0008(dialect),
    '0009_alerts': m0009(dialect),
    '0010_audit': m0010(dialect),
    '0011_token_scopes': m0011(),
    '0012_checks_and_failovers': m0012(),
    '0013_cache': m0013(),
  };
}

class CodeMigrationProvider implements MigrationProvider {
  constructor(private readonly dialect: DialectKind) {}
  async getMigrations(): Promise<Record<string, Migration>> {
    return migrations(this.dialect);
  }
}

/** PostgreSQL's codes for a schema, table or column that is not there (any more). */
const CONCURRENT_DDL = new Set(['3F000', '42P01', '42703']);

/** Applies every pending migration; Kysely's migration lock makes concurrent starts safe. */
export async function migrateToLatest(db: Kysely<any>, dialect: DialectKind): Promise<string[]> {
  // Kysely looks for its migration tables in every schema unless told which: in a database
  // where another schema already has them, a new schema would never be migrated.
  let migrationTableSchema: string | undefined;
  if (dialect === 'postgres') {
    const { rows } = await sql<{ schema: string | null }>`select current_schema() as schema`.execute(db);
    migrationTableSchema = rows[0]?.schema ?? undefined;
    if (!migrationTableSchema) throw new Error('the search_path names no schema that exists: create it, or fix search_path');
  }
  const migrator = new Migrator({ db, provider: new CodeMigrationProvider(dialect), migrationTableSchema });
  for (let attempt = 1; ; attempt++) {
    const { error, results } = await migrator.migrateToLatest();
    if (!error) return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
    // Kysely's own PostgreSQL introspector looks for its tables by reading the columns of every
    // schema in the database; a schema, table or column another deployment drops meanwhile makes
    // that read fail ("schema … does not exist", "column … does not exist", about the other
    // schema). openDatabase gives it one that reads the current schema only (introspector.ts);
    // a Kysely made elsewhere may not. That is before any migration ran (no results): read again.
    if (results === undefined && attempt < 5 && CONCURRENT_DDL.has((error as { code?: unknown }).code as string)) {
      await new Promise((r) => setTimeout(r, 20 * attempt));
      continue;
    }
    const failed = results?.find((r) => r.status === 'Error')?.migrationName;
    throw new Error(`database migration ${failed ?? ''} failed: ${error instanceof Error ? error.message : String(error)}`);
  }
}

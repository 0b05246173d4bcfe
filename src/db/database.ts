import fs from 'node:fs';
import path from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import {
  type DatabaseConnection,
  type Dialect,
  type Driver,
  Kysely,
  PostgresDialect,
  SqliteDialect,
  type TransactionSettings,
  sql,
} from 'kysely';
import pg from 'pg';
import type { DatabaseConfig } from '../config.js';
import { CurrentSchemaIntrospector } from './introspector.js';
import { migrateToLatest } from './migrations.js';
import { type CheckpointerHandle, startCheckpointer } from './sqlite-checkpointer.js';
import type { Database } from './schema.js';

const TX_CONTROL = /^\s*(begin|commit|rollback|savepoint|release)\b/i;

export type { DialectKind } from './dialect.js';
import type { DialectKind } from './dialect.js';
export type Db = Kysely<Database>;

/** Counters kept by every database handle; tests and benchmarks read them. */
export class DbStats {
  transactions = 0;
  commits = 0;
  rollbacks = 0;
  /** Statements run, not counting transaction control (begin, commit, …). */
  queries = 0;
}

export interface DatabaseHandle {
  db: Db;
  dialect: DialectKind;
  stats: DbStats;
  close(): Promise<void>;
}

/** Wraps a driver so that every transaction it opens, commits or rolls back is counted. */
class CountingDriver implements Driver {
  constructor(
    private readonly inner: Driver,
    private readonly stats: DbStats,
    /** SQLite: the connection, to know whether a transaction is still open. */
    private readonly sqlite: SqliteDatabase.Database | null,
  ) {}
  init() {
    return this.inner.init();
  }
  acquireConnection() {
    return this.inner.acquireConnection();
  }
  async beginTransaction(conn: DatabaseConnection, settings: TransactionSettings) {
    this.stats.transactions++;
    return this.inner.beginTransaction(conn, settings);
  }
  async commitTransaction(conn: DatabaseConnection) {
    await this.inner.commitTransaction(conn);
    this.stats.commits++;
  }
  async rollbackTransaction(conn: DatabaseConnection) {
    // SQLite rolls a transaction back by itself on some errors (a full disk, an I/O error):
    // a ROLLBACK then fails with "cannot rollback - no transaction is active", and Kysely
    // would throw that instead of the error that caused it. The real cause must surface.
    if (this.sqlite && !this.sqlite.inTransaction) {
      this.stats.rollbacks++;
      return;
    }
    await this.inner.rollbackTransaction(conn);
    this.stats.rollbacks++;
  }
  releaseConnection(conn: DatabaseConnection) {
    return this.inner.releaseConnection(conn);
  }
  destroy() {
    return this.inner.destroy();
  }
}

/** The dialect with its transactions counted; on PostgreSQL, introspection of the current schema only (introspector.ts). */
function counting(dialect: Dialect, stats: DbStats, sqlite: SqliteDatabase.Database | null): Dialect {
  return {
    createAdapter: () => dialect.createAdapter(),
    createDriver: () => new CountingDriver(dialect.createDriver(), stats, sqlite),
    createIntrospector: (db) => (dialect instanceof PostgresDialect ? new CurrentSchemaIntrospector(db) : dialect.createIntrospector(db)),
    createQueryCompiler: () => dialect.createQueryCompiler(),
  };
}

export interface OpenOptions {
  /** SQLite: the checkpointing thread failed; the main connection checkpoints again. */
  onCheckpointerFailure?: (err: unknown) => void;
  /** Applied to every new PostgreSQL connection (tests isolate themselves in a schema). */
  pgSearchPath?: string;
  pgPoolSize?: number;
}

export async function openDatabase(config: DatabaseConfig, opts: OpenOptions = {}): Promise<DatabaseHandle> {
  const stats = new DbStats();
  let dialect: Dialect;
  let sqliteDb: SqliteDatabase.Database | null = null;
  let checkpointer: CheckpointerHandle | null = null;
  if (config.kind === 'sqlite') {
    if (config.file !== ':memory:') fs.mkdirSync(path.dirname(config.file), { recursive: true, mode: 0o700 });
    const sqlite = new SqliteDatabase(config.file);
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('busy_timeout = 5000');
    sqlite.pragma('synchronous = NORMAL');
    sqlite.pragma('foreign_keys = ON');
    dialect = new SqliteDialect({ database: sqlite });
    sqliteDb = sqlite;
    if (config.file !== ':memory:') {
      // Checkpoints run in a thread of their own (see sqlite-checkpointer.ts); should it fail,
      // this connection checkpoints again, as SQLite does by default.
      const restore = (err: unknown) => {
        if (!sqlite.open) return;
        sqlite.pragma('wal_autocheckpoint = 1000');
        opts.onCheckpointerFailure?.(err);
      };
      try {
        checkpointer = await startCheckpointer(config.file, restore);
        sqlite.pragma('wal_autocheckpoint = 0');
      } catch (err) {
        restore(err);
      }
    }
  } else {
    const pool = new pg.Pool({
      connectionString: config.url,
      // bigint ids and count(*) as numbers: exact up to 2^53.
      types: { getTypeParser: (oid: number, format?: 'text' | 'binary') => (oid === 20 ? Number : pg.types.getTypeParser(oid, format as 'text')) } as never,
      max: opts.pgPoolSize ?? 10,
      ...(opts.pgSearchPath ? { options: `-c search_path=${opts.pgSearchPath}` } : {}),
    });
    // An idle client that errors (server restart) must not crash the process.
    pool.on('error', () => {});
    dialect = new PostgresDialect({ pool });
  }
  const db = new Kysely<Database>({
    dialect: counting(dialect, stats, sqliteDb),
    log: (event) => {
      if (!TX_CONTROL.test(event.query.sql)) stats.queries++;
    },
  });
  const handle: DatabaseHandle = {
    db,
    dialect: config.kind,
    stats,
    close: async () => {
      await checkpointer?.stop();
      await db.destroy();
    },
  };
  try {
    await migrateToLatest(db, config.kind);
  } catch (err) {
    await handle.close().catch(() => {});
    throw err;
  }
  return handle;
}

export async function ping(db: Db): Promise<void> {
  await sql`select 1`.execute(db);
}

import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import pg from 'pg';
import type { DatabaseConfig } from '../../src/config.js';
import type { OpenOptions } from '../../src/db/database.js';

export interface TestDatabase {
  config: DatabaseConfig;
  open: OpenOptions;
  /** A data directory for the test (secrets, the SQLite file). */
  dataDir: string;
  cleanup(): Promise<void>;
}

export interface DialectCase {
  name: 'sqlite' | 'postgres';
  /** Set when this dialect cannot run here; node:test prints it as the skip reason. */
  skip: string | false;
  create(): Promise<TestDatabase>;
}

const PG_URL = process.env.TEST_DATABASE_URL;

export function tempDir(prefix = 'tavily-pool-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

const sqliteCase: DialectCase = {
  name: 'sqlite',
  skip: false,
  async create() {
    const dataDir = tempDir();
    return {
      config: { kind: 'sqlite', file: path.join(dataDir, 'test.db') },
      open: {},
      dataDir,
      async cleanup() {
        fs.rmSync(dataDir, { recursive: true, force: true });
      },
    };
  },
};

const postgresCase: DialectCase = {
  name: 'postgres',
  skip: PG_URL ? false : 'TEST_DATABASE_URL is not set: PostgreSQL suite skipped',
  async create() {
    const url = PG_URL!;
    // Each test database is a schema of its own, so test files can run side by side.
    const schema = `t_${randomBytes(6).toString('hex')}`;
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    await admin.query(`create schema ${schema}`);
    await admin.end();
    const dataDir = tempDir();
    return {
      config: { kind: 'postgres', url },
      open: { pgSearchPath: schema },
      dataDir,
      async cleanup() {
        const c = new pg.Client({ connectionString: url });
        await c.connect();
        await c.query(`drop schema if exists ${schema} cascade`);
        await c.end();
        fs.rmSync(dataDir, { recursive: true, force: true });
      },
    };
  },
};

/** The database suites run on each: SQLite always, PostgreSQL when TEST_DATABASE_URL is set. */
export const dialects: DialectCase[] = [sqliteCase, postgresCase];

/**
 * Declares a suite once per dialect. A dialect that cannot run here is reported as one
 * skipped test with the reason, so the runner's closing count shows it (a skipped describe
 * would not be counted).
 */
export function describeEachDialect(title: string, body: (dialect: DialectCase) => void): void {
  for (const dialect of dialects) {
    if (dialect.skip) test(`${title} on ${dialect.name}`, { skip: dialect.skip }, () => {});
    else describe(`${title} on ${dialect.name}`, () => body(dialect));
  }
}

import { Writable } from 'node:stream';
import { after, before, beforeEach } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.js';
import { type Config, loadConfig } from '../../src/config.js';
import { type AppContext, type ContextOptions, createContext } from '../../src/context.js';
import { generateEncryptionKey, parseEncryptionKey } from '../../src/crypto.js';
import { createLogger } from '../../src/logger.js';
import type { DialectCase, TestDatabase } from './db.js';
import { FakeTavily } from './fake-tavily.js';

export const ADMIN_TOKEN = 'test-admin-token-0123456789';

/** Collects every log line the app writes, so tests can check what is (not) logged. */
export class LogSink extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.lines.push(chunk.toString('utf8'));
    cb();
  }
  get text(): string {
    return this.lines.join('');
  }
}

export interface TestApp {
  app: FastifyInstance;
  ctx: AppContext;
  db: TestDatabase;
  logs: LogSink;
  auth: { authorization: string };
  close(): Promise<void>;
}

export interface TestAppOptions extends ContextOptions {
  tavilyBaseUrl?: string;
  env?: Record<string, string>;
  /** Change the context before the app is built (e.g. swap the refresher). */
  prepare?: (ctx: AppContext) => void;
  /** Use this database (another instance's) rather than a new one; close() leaves it in place. */
  database?: TestDatabase;
  /** Instances sharing a database must share the key that encrypts the Tavily keys. */
  encryptionKey?: Buffer;
  /** The MCP research tool's first wait before polling (short in tests). */
  mcpResearchPollMs?: number;
}

export async function startTestApp(dialect: DialectCase, opts: TestAppOptions = {}): Promise<TestApp> {
  const db = opts.database ?? (await dialect.create());
  const config: Config = {
    ...loadConfig({
      DATA_DIR: db.dataDir,
      TAVILY_BASE_URL: opts.tavilyBaseUrl ?? 'http://127.0.0.1:9',
      REFRESH_TIMEOUT_MS: '2000',
      LOG_LEVEL: 'info',
      // Tests import keys and look at what the gateway itself finds out about them: the
      // background check of new keys is switched on by the tests of it.
      VALIDATE_ON_IMPORT: 'false',
      // The tests' receivers listen on 127.0.0.1, which sinks may not reach by default.
      ALERT_SINK_ALLOW: '127.0.0.1',
      ...opts.env,
    }),
    database: db.config,
  };
  const logs = new LogSink();
  const ctx = await createContext(
    config,
    { adminToken: ADMIN_TOKEN, encryptionKey: opts.encryptionKey ?? parseEncryptionKey(generateEncryptionKey()) },
    createLogger('info', logs),
    { ...db.open, ...opts },
  );
  opts.prepare?.(ctx);
  const app = await buildApp(ctx, { mcpResearchPollMs: opts.mcpResearchPollMs ?? 20 });
  await app.ready();
  return {
    app,
    ctx,
    db,
    logs,
    auth: { authorization: `Bearer ${ADMIN_TOKEN}` },
    async close() {
      await app.close();
      await ctx.close();
      if (!opts.database) await db.cleanup();
    },
  };
}

export interface TestCluster {
  instances: TestApp[];
  db: TestDatabase;
  close(): Promise<void>;
}

/** `n` instances of the gateway on one database, as a deployment behind a load balancer runs them. */
export async function startCluster(dialect: DialectCase, n: number, opts: TestAppOptions = {}): Promise<TestCluster> {
  const db = await dialect.create();
  const encryptionKey = parseEncryptionKey(generateEncryptionKey());
  const instances: TestApp[] = [];
  try {
    for (let i = 0; i < n; i++) instances.push(await startTestApp(dialect, { ...opts, database: db, encryptionKey }));
  } catch (err) {
    for (const t of instances) await t.close();
    await db.cleanup();
    throw err;
  }
  return {
    instances,
    db,
    async close() {
      for (const t of instances) await t.close();
      await db.cleanup();
    },
  };
}

/**
 * A fake Tavily for a suite: started before it, reset (no latency, no counts) before each test,
 * closed after. `withApp` runs one test against a fresh app that uses it.
 */
export function fakeUpstream(dialect: DialectCase) {
  let current: FakeTavily | undefined;
  before(async () => {
    current = await FakeTavily.start();
  });
  after(async () => {
    await current?.close();
  });
  beforeEach(() => {
    current!.latencyMs = 0;
    current!.sitePages = 3;
    current!.researchPendingPolls = 0;
    current!.resetStats();
  });
  return {
    get fake(): FakeTavily {
      return current!;
    },
    async withApp(env: Record<string, string>, fn: (t: TestApp) => Promise<void>): Promise<void> {
      const t = await startTestApp(dialect, { tavilyBaseUrl: current!.url, env });
      try {
        await fn(t);
      } finally {
        await t.close();
      }
    },
  };
}

/** An app with keys added and a client token made: what most gateway tests start from. */
export interface GatewayCase {
  t: TestApp;
  token: string;
  /** key text → its id */
  ids: Map<string, number>;
}

export async function keysAndToken(t: TestApp, keys: string[], tokenBody: object = { name: 'agent' }): Promise<GatewayCase> {
  const add = await t.app.inject({ method: 'POST', url: '/api/v1/admin/tavily-keys', headers: t.auth, payload: { keys } });
  if (add.statusCode !== 201) throw new Error(`adding keys failed: ${add.statusCode} ${add.body}`);
  const ids = new Map<string, number>(add.json().items.map((i: { id: number }, n: number) => [keys[n]!, i.id]));
  const tok = await t.app.inject({ method: 'POST', url: '/api/v1/admin/tokens', headers: t.auth, payload: tokenBody });
  if (tok.statusCode !== 201) throw new Error(`creating the token failed: ${tok.statusCode} ${tok.body}`);
  return { t, token: tok.json().token, ids };
}

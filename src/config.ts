import path from 'node:path';
import { parseAllowList, parseCidr } from './net.js';
import { Cron } from 'croner';

/** Thrown when an environment variable holds a value the gateway cannot use. */
export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

/** How the pool picks a key for each request (KEY_STRATEGY). */
export const KEY_STRATEGIES = ['most-remaining', 'expiring-first', 'round-robin', 'least-recently-used'] as const;
export type KeyStrategy = (typeof KEY_STRATEGIES)[number];

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export type DatabaseConfig =
  | { kind: 'sqlite'; file: string }
  | { kind: 'postgres'; url: string };

export interface Config {
  port: number;
  host: string;
  dataDir: string;
  database: DatabaseConfig;
  /** Unset means: read or generate the secret file in dataDir (see secrets.ts). */
  adminToken: string | undefined;
  /** Raw ENCRYPTION_KEY text; unset means read or generate in dataDir. */
  encryptionKey: string | undefined;
  tavilyBaseUrl: string;
  refreshConcurrency: number;
  refreshTimeoutMs: number;
  logLevel: LogLevel;
  /** Largest admin import body, in bytes. */
  importBodyLimit: number;
  keyStrategy: KeyStrategy;
  /** When the scheduled refresh runs (cron, UTC). */
  refreshCron: string;
  refreshOnStart: boolean;
  /** The scheduled refresh skips keys refreshed more recently than this. */
  refreshStaleAfterS: number;
  /** When keys out of credits are checked again for a new billing cycle (cron, UTC). */
  exhaustedRecheckCron: string;
  /** Credits Tavily may count beyond what went through the pool before a key is reported as used elsewhere. */
  usageDriftTolerance: number;
  /** Serve GET /metrics and count for it. */
  metricsEnabled: boolean;
  /** When set, /metrics takes `Authorization: Bearer <METRICS_TOKEN>`. */
  metricsToken: string | null;
  /** Client tokens labelled by name in the metrics; the rest are `other`. */
  metricsTokenLabels: number;
  auditRetentionDays: number;
  /** Proxies whose X-Forwarded-For is believed (addresses, networks, or loopback / linklocal / uniquelocal); none by default. */
  trustedProxies: string[];
  alerts: {
    checkIntervalMs: number;
    pollMs: number;
    retryBaseMs: number;
    giveUpMs: number;
    timeoutMs: number;
    telegramApiUrl: string;
    /** Refuse sinks on loopback, private and reserved addresses (ALERT_SINK_DENY_PRIVATE, default true). */
    denyPrivate: boolean;
    /** Networks and host names sinks may reach even so (ALERT_SINK_ALLOW). */
    allow: string[];
  };
  /** PostgreSQL: every instance reads all keys and tokens again this often (the safety net under LISTEN/NOTIFY). */
  syncIntervalS: number;
  /**
   * PostgreSQL: credits of one token's budget an instance may hold before its reservation has
   * come back over the change feed. 0 (the default): budgets hold exactly across instances,
   * each budgeted call waiting one feed round trip; more: no wait within it, and the instances
   * together overshoot a budget by at most (instances − 1) × this.
   */
  clusterBudgetSlack: number;
  /** Costly upstream failures (5xx, timeouts, connection errors) one gateway request may meet before it answers 503. */
  maxAttempts: number;
  /** How long one request may go on trying keys whose answers cost nothing (401, 429, 432, 433). */
  failoverBudgetMs: number;
  /** The answer cache and in-flight dedup (gateway/cache.ts). */
  cache: {
    /** CACHE_MAX_BYTES: memory the stored answers may take (0: no cache at all). */
    maxBytes: number;
    /** CACHE_MAX_ENTRY_BYTES: a larger answer is not stored. */
    maxEntryBytes: number;
    /** CACHE_MAX_TTL_S: nothing older is served, whatever a token asks. */
    maxTtlS: number;
    /** MCP_CACHE_TTL_S: the TTL of MCP calls by tokens that set none (retried tool calls). */
    mcpTtlS: number;
  };
  /** Keys added without ?validate=true are checked against /usage in the background. */
  validateOnImport: boolean;
  logRetentionDays: number;
  /** The whole request (headers and body) must arrive within this; slower clients get 408. */
  requestTimeoutMs: number;
  /** The request's headers must arrive within this. */
  headersTimeoutMs: number;
  /** An idle keep-alive connection is closed after this. */
  keepAliveTimeoutMs: number;
  /** Browser origins allowed to call /mcp besides localhost (MCP_ALLOWED_ORIGINS, comma-separated). */
  mcpAllowedOrigins: string[];
  /** Upstream answers larger than this are refused as upstream failures. */
  upstreamMaxBodyBytes: number;
  /** HTTP proxy for upstream calls (HTTPS_PROXY / HTTP_PROXY / NO_PROXY, either case). */
  proxy: { httpProxy?: string; httpsProxy?: string; noProxy?: string };
}

type Env = Record<string, string | undefined>;

function nonEmpty(env: Env, name: string): string | undefined {
  const v = env[name];
  if (v === undefined) return undefined;
  const t = v.trim();
  return t === '' ? undefined : t;
}

function int(env: Env, name: string, def: number, min: number, max: number): number {
  const raw = nonEmpty(env, name);
  if (raw === undefined) return def;
  if (!/^\d+$/.test(raw)) throw new ConfigError(name, `expected a whole number, got "${raw}"`);
  const n = Number(raw);
  if (n < min || n > max) throw new ConfigError(name, `expected a number from ${min} to ${max}, got ${n}`);
  return n;
}

function bool(env: Env, name: string, def: boolean): boolean {
  const raw = nonEmpty(env, name);
  if (raw === undefined) return def;
  if (/^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off)$/i.test(raw)) return false;
  throw new ConfigError(name, `expected true or false, got "${raw}"`);
}

function url(env: Env, name: string, def: string): string {
  const raw = nonEmpty(env, name) ?? def;
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new ConfigError(name, `not a URL: "${raw}"`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new ConfigError(name, `expected an http:// or https:// URL, got "${u.protocol}"`);
  }
  return raw.replace(/\/+$/, '');
}

export const SQLITE_FILE_NAME = 'tavily-pool.db';
/**
 * Every 6 hours: a billing cycle that restarts (on the account's own day) is seen within 6
 * hours, at 4 /usage calls a day per exhausted key (Tavily allows about 10 per 10 minutes).
 */
export const DEFAULT_EXHAUSTED_RECHECK_CRON = '30 */6 * * *';

export function loadConfig(env: Env = process.env): Config {
  const dataDir = path.resolve(nonEmpty(env, 'DATA_DIR') ?? './data');

  let database: DatabaseConfig;
  const dbUrl = nonEmpty(env, 'DATABASE_URL');
  if (dbUrl === undefined) {
    database = { kind: 'sqlite', file: path.join(dataDir, SQLITE_FILE_NAME) };
  } else if (/^postgres(ql)?:\/\//.test(dbUrl)) {
    try {
      new URL(dbUrl);
    } catch {
      throw new ConfigError('DATABASE_URL', 'not a valid postgres:// URL');
    }
    database = { kind: 'postgres', url: dbUrl };
  } else if (dbUrl.startsWith('sqlite:')) {
    const file = dbUrl.slice('sqlite:'.length).replace(/^\/\//, '');
    if (file === '') throw new ConfigError('DATABASE_URL', 'sqlite: URL names no file');
    database = { kind: 'sqlite', file: file === ':memory:' ? file : path.resolve(file) };
  } else {
    throw new ConfigError('DATABASE_URL', 'expected postgres://… or sqlite:<file>');
  }

  const logLevel = (nonEmpty(env, 'LOG_LEVEL') ?? 'info').toLowerCase();
  if (!LOG_LEVELS.includes(logLevel as LogLevel)) {
    throw new ConfigError('LOG_LEVEL', `expected one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`);
  }

  const keyStrategy = (nonEmpty(env, 'KEY_STRATEGY') ?? 'expiring-first').toLowerCase();
  if (!KEY_STRATEGIES.includes(keyStrategy as KeyStrategy)) {
    throw new ConfigError('KEY_STRATEGY', `expected one of ${KEY_STRATEGIES.join(', ')}, got "${keyStrategy}"`);
  }

  const cron = (name: string, fallback: string) => {
    const expr = nonEmpty(env, name) ?? fallback;
    try {
      new Cron(expr, { paused: true, timezone: 'UTC' }).stop();
    } catch (err) {
      throw new ConfigError(name, `not a cron expression (${(err as Error).message}): "${expr}"`);
    }
    return expr;
  };
  const refreshCron = cron('REFRESH_CRON', '0 * * * *');
  const exhaustedRecheckCron = cron('EXHAUSTED_RECHECK_CRON', DEFAULT_EXHAUSTED_RECHECK_CRON);

  const metricsToken = nonEmpty(env, 'METRICS_TOKEN');
  if (metricsToken !== undefined && metricsToken.length < 16) {
    throw new ConfigError('METRICS_TOKEN', 'must be at least 16 characters long');
  }

  const adminToken = nonEmpty(env, 'ADMIN_TOKEN');
  if (adminToken !== undefined && adminToken.length < 16) {
    throw new ConfigError('ADMIN_TOKEN', 'must be at least 16 characters long');
  }

  const proxyUrl = (name: string) => {
    const raw = nonEmpty(env, name) ?? nonEmpty(env, name.toLowerCase());
    if (raw === undefined) return undefined;
    try {
      const u = new URL(raw);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error();
    } catch {
      throw new ConfigError(name, `expected a proxy URL such as http://proxy.example:3128, got "${raw.replace(/\/\/[^@/]*@/, '//…@')}"`);
    }
    return raw;
  };

  const requestTimeoutMs = int(env, 'REQUEST_TIMEOUT_MS', 30_000, 100, 3_600_000);
  const headersTimeoutMs = int(env, 'HEADERS_TIMEOUT_MS', Math.min(10_000, requestTimeoutMs), 100, 3_600_000);
  if (headersTimeoutMs > requestTimeoutMs) {
    throw new ConfigError('HEADERS_TIMEOUT_MS', `must not be longer than REQUEST_TIMEOUT_MS (${requestTimeoutMs}), got ${headersTimeoutMs}`);
  }

  return {
    port: int(env, 'PORT', 8080, 0, 65535),
    requestTimeoutMs,
    headersTimeoutMs,
    keepAliveTimeoutMs: int(env, 'KEEP_ALIVE_TIMEOUT_MS', 72_000, 100, 3_600_000),
    host: nonEmpty(env, 'HOST') ?? '0.0.0.0',
    dataDir,
    database,
    adminToken,
    encryptionKey: nonEmpty(env, 'ENCRYPTION_KEY'),
    tavilyBaseUrl: url(env, 'TAVILY_BASE_URL', 'https://api.tavily.com'),
    refreshConcurrency: int(env, 'REFRESH_CONCURRENCY', 64, 1, 10_000),
    refreshTimeoutMs: int(env, 'REFRESH_TIMEOUT_MS', 30_000, 100, 600_000),
    logLevel: logLevel as LogLevel,
    importBodyLimit: int(env, 'IMPORT_BODY_LIMIT_BYTES', 32 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
    keyStrategy: keyStrategy as KeyStrategy,
    maxAttempts: int(env, 'MAX_ATTEMPTS', 3, 1, 20),
    failoverBudgetMs: int(env, 'FAILOVER_BUDGET_MS', 10_000, 100, 600_000),
    cache: {
      maxBytes: int(env, 'CACHE_MAX_BYTES', 64 * 1024 * 1024, 0, 64 * 1024 ** 3),
      maxEntryBytes: int(env, 'CACHE_MAX_ENTRY_BYTES', 1024 * 1024, 1024, 1024 ** 3),
      maxTtlS: int(env, 'CACHE_MAX_TTL_S', 86_400, 1, 604_800),
      mcpTtlS: int(env, 'MCP_CACHE_TTL_S', 60, 0, 604_800),
    },
    validateOnImport: bool(env, 'VALIDATE_ON_IMPORT', true),
    logRetentionDays: int(env, 'LOG_RETENTION_DAYS', 30, 1, 3650),
    refreshCron,
    refreshOnStart: bool(env, 'REFRESH_ON_START', true),
    refreshStaleAfterS: int(env, 'REFRESH_STALE_AFTER_S', 1800, 0, 31 * 86400),
    exhaustedRecheckCron,
    usageDriftTolerance: int(env, 'USAGE_DRIFT_TOLERANCE', 10, 0, 1_000_000),
    metricsEnabled: bool(env, 'METRICS_ENABLED', true),
    metricsToken: metricsToken ?? null,
    metricsTokenLabels: int(env, 'METRICS_TOKEN_LABELS', 50, 0, 10_000),
    auditRetentionDays: int(env, 'AUDIT_RETENTION_DAYS', 365, 1, 36500),
    trustedProxies: (nonEmpty(env, 'TRUSTED_PROXIES') ?? '')
      .split(',')
      .map((p) => p.trim())
      .filter(Boolean)
      .map((p) => {
        if (['loopback', 'linklocal', 'uniquelocal'].includes(p)) return p;
        try {
          parseCidr(p);
        } catch (err) {
          throw new ConfigError('TRUSTED_PROXIES', `${(err as Error).message}; or one of loopback, linklocal, uniquelocal`);
        }
        return p;
      }),
    alerts: {
      checkIntervalMs: int(env, 'ALERT_CHECK_INTERVAL_S', 60, 1, 86_400) * 1000,
      pollMs: int(env, 'ALERT_POLL_MS', 5000, 10, 600_000),
      retryBaseMs: int(env, 'ALERT_RETRY_BASE_MS', 30_000, 10, 3_600_000),
      giveUpMs: int(env, 'ALERT_GIVE_UP_HOURS', 24, 1, 24 * 30) * 3600_000,
      timeoutMs: int(env, 'ALERT_TIMEOUT_MS', 10_000, 100, 120_000),
      telegramApiUrl: url(env, 'TELEGRAM_API_URL', 'https://api.telegram.org'),
      denyPrivate: bool(env, 'ALERT_SINK_DENY_PRIVATE', true),
      allow: (() => {
        const list = (nonEmpty(env, 'ALERT_SINK_ALLOW') ?? '').split(',').map((p) => p.trim()).filter(Boolean);
        try {
          parseAllowList(list);
        } catch (err) {
          throw new ConfigError('ALERT_SINK_ALLOW', (err as Error).message);
        }
        return list;
      })(),
    },
    syncIntervalS: int(env, 'SYNC_INTERVAL_S', 30, 1, 3600),
    clusterBudgetSlack: int(env, 'CLUSTER_BUDGET_SLACK', 0, 0, 1_000_000),
    mcpAllowedOrigins: (nonEmpty(env, 'MCP_ALLOWED_ORIGINS') ?? '')
      .split(',')
      .map((o) => o.trim().replace(/\/+$/, ''))
      .filter(Boolean)
      .map((o) => {
        try {
          return new URL(o).origin;
        } catch {
          throw new ConfigError('MCP_ALLOWED_ORIGINS', `expected origins such as https://app.example.com, got "${o}"`);
        }
      }),
    upstreamMaxBodyBytes: int(env, 'UPSTREAM_MAX_BODY_BYTES', 50 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
    proxy: {
      httpProxy: proxyUrl('HTTP_PROXY'),
      httpsProxy: proxyUrl('HTTPS_PROXY'),
      noProxy: nonEmpty(env, 'NO_PROXY') ?? nonEmpty(env, 'no_proxy'),
    },
  };
}

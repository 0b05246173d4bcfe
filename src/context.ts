import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { Alerts } from './alerts/alerts.js';
import { AuditLog } from './audit/audit.js';
import { type Bus, LocalBus, PgBus } from './cluster/bus.js';
import { ChangeFeed } from './cluster/changes.js';
import { HOST, Instances } from './cluster/instances.js';
import { ClusterSync, flushItems, refreshItems } from './cluster/sync.js';
import type { Config } from './config.js';
import { KeyCipher } from './crypto.js';
import { type DatabaseHandle, type OpenOptions, openDatabase } from './db/database.js';
import { checkEncryptionKey } from './db/encryption-check.js';
import { AccountRepository } from './db/repositories/accounts.js';
import { AlertRepository } from './db/repositories/alerts.js';
import { AuditRepository } from './db/repositories/audit.js';
import { KeyRepository } from './db/repositories/keys.js';
import { LogRepository } from './db/repositories/logs.js';
import { TokenRepository } from './db/repositories/tokens.js';
import { BudgetLedger } from './gateway/budget.js';
import { AnswerCache } from './gateway/cache.js';
import { GatewayCore } from './gateway/core.js';
import { ResearchRegistry } from './gateway/research.js';
import { TokenRegistry } from './gateway/tokens.js';
import { Lifecycle } from './lifecycle.js';
import { Metrics } from './metrics.js';
import { packageVersion } from './paths.js';
import type { HealthOptions } from './plugins/health.js';
import { PlainKeyCache } from './pool/key-cache.js';
import { KeyStates } from './pool/key-states.js';
import { PoolLoader } from './pool/loader.js';
import { Outbox } from './pool/outbox.js';
import { KeyPool } from './pool/pool.js';
import { createScheduler } from './quota/jobs.js';
import { pruneOld } from './quota/prune.js';
import { QuotaRefresher } from './quota/refresh.js';
import type { Scheduler } from './quota/scheduler.js';
import type { Secrets } from './secrets.js';
import { AccountService } from './services/accounts.js';
import { AlertService } from './services/alerts.js';
import type { AdminServices } from './services/index.js';
import { KeyService } from './services/keys.js';
import { LogService } from './services/logs.js';
import { TokenService } from './services/tokens.js';
import { TavilyClient } from './tavily/client.js';

/** What the app is built from: the core, the admin services, and how the process starts and stops. */
export interface AppContext {
  config: Config;
  log: Logger;
  adminToken: string;
  /** The gateway, free of HTTP: the REST and MCP doors call it. */
  gateway: GatewayCore;
  /** The admin use cases (keys, accounts, tokens, alerts, logs, instances). */
  services: AdminServices;
  /** Counts refused credentials at every door. */
  audit: AuditLog;
  /** Prometheus metrics (GET /metrics); null when METRICS_ENABLED=false. */
  metrics: Metrics | null;
  /** What /readyz reads. */
  health: HealthOptions;
  /** The periodic jobs: refresh, recheck of exhausted keys, pruning (the server starts them). */
  jobs: Scheduler;
  /** The parts below the services, for tests, benches and the jobs; routes never reach for them. */
  parts: Parts;
  /** Stops every part, last started first; says how many request-log rows could not be written. */
  close(): Promise<{ unwritten: number }>;
}

/** The parts the services and the core are made of. */
export interface Parts {
  /** The answer cache (null: CACHE_MAX_BYTES=0). */
  cache: AnswerCache | null;
  database: DatabaseHandle;
  repos: { keys: KeyRepository; accounts: AccountRepository; tokens: TokenRepository; logs: LogRepository; alerts: AlertRepository; audit: AuditRepository };
  cipher: KeyCipher;
  /** Decrypted keys by id, shared by the pool and the refresh. */
  plainKeys: PlainKeyCache;
  tavily: TavilyClient;
  pool: KeyPool;
  /** The one place a key's state changes (health, rests, spend). */
  keyStates: KeyStates;
  loader: PoolLoader;
  tokens: TokenRegistry;
  /** Each call's most possible cost held against its token's budget until its answer settles it. */
  budget: BudgetLedger;
  /** The gateway's state outbox: spend, health, rests and the request log, written in batches. */
  outbox: Outbox;
  research: ResearchRegistry;
  refresher: QuotaRefresher;
  /** Alerts: events recorded with the changes that cause them, conditions checked, the outbox delivered. */
  alerts: Alerts;
  /** How instances tell each other what changed (LocalBus on SQLite: one process). */
  bus: Bus;
  /** Applies other instances' changes; reads everything again now and then. */
  sync: ClusterSync;
  /** After a stored change: applied here, and told to the other instances. */
  changes: ChangeFeed;
  /** This instance and (PostgreSQL) the others, from their heartbeats. */
  instances: Instances;
  /** Deletes request-log rows older than LOG_RETENTION_DAYS, and expired research tasks, events and audit rows. */
  prune(): Promise<number>;
}

export type ContextOptions = OpenOptions & {
  /** Write-behind flush interval (tests shorten or lengthen it). */
  flushIntervalMs?: number;
};

const DAY_MS = 24 * 3600_000;

/**
 * Builds every part once, in dependency order, and starts them (the order is the lifecycle list
 * at the end). Wiring only: what each part does is in its own module. A callback that names a
 * part made further down is only called once everything has started.
 */
export async function createContext(
  config: Config,
  secrets: Pick<Secrets, 'adminToken' | 'encryptionKey'>,
  log: Logger,
  opts: ContextOptions = {},
): Promise<AppContext> {
  const database = await openDatabase(config.database, {
    ...opts,
    onCheckpointerFailure: (err) => log.error({ err }, 'SQLite checkpoint thread failed: checkpoints run in the main thread again (big writes may pause requests briefly)'),
  });
  const { db, dialect } = database;
  const cipher = new KeyCipher(secrets.encryptionKey);
  try {
    await checkEncryptionKey(db, cipher);
  } catch (err) {
    await database.close();
    throw err;
  }
  const shared = config.database.kind === 'postgres';
  const repos = {
    keys: new KeyRepository(db, dialect),
    accounts: new AccountRepository(db, dialect),
    tokens: new TokenRepository(db, dialect),
    logs: new LogRepository(db, dialect),
    alerts: new AlertRepository(db, dialect),
    audit: new AuditRepository(db),
  };
  const audit = new AuditLog(repos.audit, log.child({ component: 'audit' }));
  const bus: Bus = config.database.kind === 'postgres' ? new PgBus({ url: config.database.url, searchPath: opts.pgSearchPath, log: log.child({ component: 'sync' }) }) : new LocalBus();
  const plainKeys = new PlainKeyCache(cipher);
  const tavily = new TavilyClient({ baseUrl: config.tavilyBaseUrl, maxBodyBytes: config.upstreamMaxBodyBytes, proxy: config.proxy });
  const pool = new KeyPool(config.keyStrategy);
  const tokens = new TokenRegistry();

  // The gateway's state: budgets (across instances on the change feed), the outbox, research owners.
  const budget = new BudgetLedger({
    tokens,
    slack: config.clusterBudgetSlack,
    feed: shared
      ? {
          get instanceId() {
            return bus.instanceId;
          },
          get listening() {
            return bus.listening;
          },
          post: (items) => bus.post(db, items),
          instances: () => instances.live(),
        }
      : null,
  });
  const outbox = new Outbox({
    db,
    dialect,
    log: log.child({ component: 'request-log' }),
    intervalMs: opts.flushIntervalMs,
    onFlush: (seconds, ok) => {
      metrics?.flush(seconds, ok);
      if (ok) alerts.committed();
    },
    beforeHealth: (trx, changes) => alerts.keyHealth(trx, changes),
    publish: (trx, changes): Promise<void> => bus.publish(trx, flushItems(changes, budget.levelsAfterFlush(changes.tokens))),
    committed: (changes) => budget.flushed(changes.tokens),
  });
  const research = new ResearchRegistry(db, outbox, (hold) => budget.release(hold));
  const metrics = config.metricsEnabled ? new Metrics({ pool, outbox, tokenLabels: config.metricsTokenLabels }) : null;
  const alerts = new Alerts({
    db,
    dialect,
    repo: repos.alerts,
    cipher,
    pool,
    tokens,
    logs: repos.logs,
    bus: () => (bus.shared ? bus : null),
    log: log.child({ component: 'alerts' }),
    config: { ...config.alerts, proxy: config.proxy },
    onDelivery: (result) => metrics?.alertDelivery(result),
  });
  const keyStates = new KeyStates(pool, outbox, log.child({ component: 'gateway' }), metrics);
  const answers = config.cache.maxBytes > 0 ? new AnswerCache({ maxBytes: config.cache.maxBytes, maxEntryBytes: config.cache.maxEntryBytes, maxTtlMs: config.cache.maxTtlS * 1000 }) : null;
  const gateway = new GatewayCore({
    config,
    log: log.child({ component: 'gateway' }),
    pool,
    keyStates,
    tokens,
    budget,
    outbox,
    research,
    tavily,
    logs: repos.logs,
    adminToken: secrets.adminToken,
    metrics,
    cache: answers ? { answers, mcpTtlS: config.cache.mcpTtlS } : null,
  });
  const loader = new PoolLoader({ keys: repos.keys, plainKeys, pool, beforeRead: () => outbox.flush(), log });
  const reloadTokens = async () => tokens.load(await repos.tokens.list(true));

  // Several instances: what others change is applied here; what this one changes is told.
  const startedAt = new Date().toISOString();
  const version = packageVersion();
  const instances = new Instances({
    self: () => ({
      id: bus.instanceId,
      host: HOST,
      version,
      started_at: startedAt,
      listening: bus.listening,
      request_log_ok: !outbox.health.failing,
      pending_rows: outbox.pendingRows,
      keys_available: pool.counts().available,
      credits_remaining: pool.creditsRemaining(),
    }),
    announce: shared ? (info) => changes.announce([['I', info]]) : null,
  });
  const sync = new ClusterSync({
    keyStates,
    tokens,
    budget,
    research,
    reloadPool: (ids) => loader.load(ids),
    reloadTokens,
    log: log.child({ component: 'sync' }),
    intervalMs: config.syncIntervalS * 1000,
    onInstance: (info) => {
      budget.peerSeen(info.id);
      // A newcomer learns what this instance holds against budgets.
      if (instances.heard(info)) budget.announceAll();
    },
  });
  const changes = new ChangeFeed({ db, bus, apply: (items) => sync.apply(items), reloadPool: (ids) => loader.load(ids), reloadTokens, log });

  const refresher = new QuotaRefresher({
    db,
    keys: repos.keys,
    accounts: repos.accounts,
    logs: repos.logs,
    driftTolerance: config.usageDriftTolerance,
    logRetentionMs: config.logRetentionDays * DAY_MS,
    cipher,
    upstream: tavily,
    concurrency: config.refreshConcurrency,
    timeoutMs: config.refreshTimeoutMs,
    log: log.child({ component: 'refresh' }),
    plainKeys,
    beforeLoad: () => outbox.flush(),
    onRun: (seconds, keyFailures, ok) => metrics?.refresh(seconds, keyFailures, ok),
    // The pool takes the new figures from the refresh itself: no second read of every key.
    // This instance and the others apply the same outcomes the same way, reading nothing again.
    inTransaction: (trx, run) => alerts.refreshed(trx, run),
    afterWrite: async (writes, accountWrites) => {
      alerts.committed();
      await changes.applyAndAnnounce(refreshItems(writes, accountWrites));
    },
  });
  const prune = () => pruneOld({ logs: repos.logs, research, alerts, audit: repos.audit, retentionDays: config.logRetentionDays, auditRetentionDays: config.auditRetentionDays, log });

  // The admin use cases.
  const accountService = new AccountService({ db, accounts: repos.accounts, keys: repos.keys, audit, changes });
  const services: AdminServices = {
    keys: new KeyService({ db, cipher, keys: repos.keys, accounts: repos.accounts, logs: repos.logs, plainKeys, refresher, audit, changes, accountService, log }),
    accounts: accountService,
    tokens: new TokenService({ db, repo: repos.tokens, registry: tokens, budget, audit, changes }),
    alerts: new AlertService({ db, repo: repos.alerts, alerts, cipher, audit }),
    logs: new LogService({ logs: repos.logs, audit: repos.audit, flush: () => outbox.flush() }),
    instances,
  };

  // Started first to last, stopped last to first.
  let unwritten = 0;
  const lifecycle = new Lifecycle([
    { name: 'database', stop: () => Promise.allSettled([tavily.close(), database.close()]).then(() => {}) },
    // Listen before the first read, so that no change made in between is missed.
    {
      name: 'change feed',
      start: () =>
        bus instanceof PgBus
          ? bus.listen({ onItems: (items) => sync.apply(items), onResync: () => void sync.resync(), onLag: (ms) => metrics?.syncLag(ms), onEcho: (seq) => budget.echoed(seq) })
          : undefined,
      stop: () => bus.close(),
    },
    { name: 'sync settled', stop: () => sync.settled() },
    { name: 'alerts', start: () => alerts.start(), stop: () => alerts.close() },
    { name: 'audit', stop: () => audit.flush() },
    {
      name: 'outbox',
      start: () => outbox.start(),
      stop: async () => {
        ({ unwritten } = await outbox.close());
      },
    },
    { name: 'pool', start: () => loader.load(), stop: () => pool.close() },
    { name: 'tokens', start: reloadTokens, stop: () => budget.close() },
    { name: 'research', start: () => research.start(), stop: () => research.stop() },
    { name: 'instances', start: () => instances.start(), stop: () => instances.stop() },
    { name: 'sync', start: () => (shared ? sync.start() : undefined), stop: () => sync.stop() },
  ]);
  try {
    await lifecycle.start();
  } catch (err) {
    await lifecycle.stop().catch(() => {});
    throw err;
  }

  return {
    config,
    log,
    adminToken: secrets.adminToken,
    gateway,
    services,
    audit,
    metrics,
    health: { db, outbox, bus },
    jobs: createScheduler({ database, config, log, refresher, prune }),
    parts: { cache: answers, database, repos, cipher, plainKeys, tavily, pool, keyStates, loader, tokens, budget, outbox, research, refresher, alerts, bus, sync, changes, instances, prune },
    async close() {
      await lifecycle.stop();
      return { unwritten };
    },
  };
}

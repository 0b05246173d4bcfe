import type { Logger } from 'pino';
import { type Bus, PgBus, type SyncItem } from './cluster/bus.js';
import { ChangeAnnouncer } from './cluster/changes.js';
import { HOST, Instances } from './cluster/instances.js';
import { packageVersion } from './paths.js';
import { randomBytes } from 'node:crypto';
import { ClusterSync, flushItems, keyChangeItems, refreshItems } from './cluster/sync.js';
import type { Config } from './config.js';
import { KeyCipher } from './crypto.js';
import { type DatabaseHandle, type OpenOptions, openDatabase } from './db/database.js';
import { checkEncryptionKey } from './db/encryption-check.js';
import { AccountRepository } from './db/repositories/accounts.js';
import { KeyRepository } from './db/repositories/keys.js';
import { LogRepository } from './db/repositories/logs.js';
import { TokenRepository } from './db/repositories/tokens.js';
import { BudgetLedger } from './gateway/budget.js';
import { GatewayCore } from './gateway/proxy.js';
import { ResearchRegistry } from './gateway/research.js';
import { TokenRegistry } from './gateway/tokens.js';
import { pruneOld } from './logs/prune.js';
import { WriteBehind } from './logs/write-behind.js';
import { PlainKeyCache } from './pool/key-cache.js';
import { KeyStates } from './pool/key-states.js';
import { Metrics } from './metrics.js';
import { KeyPool } from './pool/pool.js';
import { PoolLoader } from './pool/loader.js';
import { QuotaRefresher } from './quota/refresh.js';
import type { Secrets } from './secrets.js';
import { TavilyClient } from './tavily/client.js';
import { Alerts } from './alerts/alerts.js';
import { AlertRepository } from './db/repositories/alerts.js';
import { AuditLog } from './audit/audit.js';
import { AuditRepository } from './db/repositories/audit.js';

/** Everything the routes need, built once and passed in (never imported as a singleton). */
export interface AppContext {
  config: Config;
  log: Logger;
  database: DatabaseHandle;
  keys: KeyRepository;
  accounts: AccountRepository;
  tokensRepo: TokenRepository;
  logs: LogRepository;
  cipher: KeyCipher;
  /** Decrypted keys by id, shared by the pool and the refresh. */
  plainKeys: PlainKeyCache;
  tavily: TavilyClient;
  refresher: QuotaRefresher;
  pool: KeyPool;
  /** The one place a key's state changes (health, rests, spend). */
  keyStates: KeyStates;
  tokens: TokenRegistry;
  /** Each call's most possible cost held against its token's budget until its answer settles it. */
  budget: BudgetLedger;
  writeBehind: WriteBehind;
  research: ResearchRegistry;
  /** The gateway, free of HTTP: the REST routes and the MCP endpoint are doors onto it. */
  gateway: GatewayCore;
  /** Who changed what (admin changes, refused credentials). */
  audit: AuditLog;
  auditRepo: AuditRepository;
  /** The alert tables: sinks, the outbox, deliveries. */
  alertsRepo: AlertRepository;
  /** Alerts: events recorded with the changes that cause them, conditions checked, the outbox delivered. */
  alerts: Alerts;
  /** Prometheus metrics (GET /metrics); null when METRICS_ENABLED=false. */
  metrics: Metrics | null;
  adminToken: string;
  /** PostgreSQL: how instances tell each other what changed (null on SQLite: one process). */
  bus: Bus | null;
  /** Applies other instances' changes; reads everything again now and then. */
  sync: ClusterSync;
  /** This instance and (PostgreSQL) the others, from their heartbeats. */
  instances: Instances;
  /** Re-reads keys into the in-memory pool: all of them, or only `ids`. */
  reloadPool(ids?: readonly number[]): Promise<void>;
  /** Re-reads the client tokens into memory. */
  reloadTokens(): Promise<void>;
  /** After an admin change to keys (these, or all): this instance reads them again, and the others are told to. */
  keysChanged(ids?: readonly number[]): Promise<void>;
  /** After an admin change to accounts' rooms (keys joined or left them): applied here, and told to the others. */
  accountsChanged(rooms: ReadonlyMap<number, number | null>): Promise<void>;
  /** After an admin change to client tokens: as keysChanged. */
  tokensChanged(): Promise<void>;
  /** Deletes request-log rows older than LOG_RETENTION_DAYS and expired research tasks. */
  pruneLogs(): Promise<number>;
  /** Flushes and closes everything; says how many request-log rows could not be written. */
  close(): Promise<{ unwritten: number }>;
}

export type ContextOptions = OpenOptions & {
  /** Write-behind flush interval (tests shorten or lengthen it). */
  flushIntervalMs?: number;
};

const DAY_MS = 24 * 3600_000;

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
  const keys = new KeyRepository(database.db, database.dialect);
  const tokensRepo = new TokenRepository(database.db);
  const accounts = new AccountRepository(database.db, database.dialect);
  const logs = new LogRepository(database.db, database.dialect);
  const alertsRepo = new AlertRepository(database.db, database.dialect);
  const auditRepo = new AuditRepository(database.db);
  const audit = new AuditLog(auditRepo, log.child({ component: 'audit' }));
  const cipher = new KeyCipher(secrets.encryptionKey);
  try {
    await checkEncryptionKey(database.db, cipher);
  } catch (err) {
    await database.close();
    throw err;
  }
  const plainKeys = new PlainKeyCache(cipher);
  const tavily = new TavilyClient({ baseUrl: config.tavilyBaseUrl, maxBodyBytes: config.upstreamMaxBodyBytes, proxy: config.proxy });
  const pool = new KeyPool(config.keyStrategy);
  const tokens = new TokenRegistry();
  // Created once the context can apply what it hears (below); the flush publishes through it.
  let bus: Bus | null = null;
  let metrics: Metrics | null = null;
  let alerts: Alerts | null = null;
  let instances: Instances | null = null;
  // Budgets across instances: what each holds travels on the change feed (PostgreSQL).
  const budget = new BudgetLedger({
    tokens,
    slack: config.clusterBudgetSlack,
    feed:
      config.database.kind === 'postgres'
        ? {
            get instanceId() {
              return bus?.instanceId ?? '';
            },
            get listening() {
              return bus?.listening ?? false;
            },
            post: (items) => (bus ? bus.post(database.db, items) : { seq: 0, sent: Promise.resolve() }),
            instances: () => instances?.live() ?? 1,
          }
        : null,
  });
  const writeBehind = new WriteBehind({
    onFlush: (seconds, ok) => {
      metrics?.flush(seconds, ok);
      if (ok) alerts?.committed();
    },
    beforeHealth: async (trx, changes) => alerts?.keyHealth(trx, changes),
    db: database.db,
    dialect: database.dialect,
    log: log.child({ component: 'request-log' }),
    intervalMs: opts.flushIntervalMs,
    publish: async (trx, changes) => {
      if (bus) await bus.publish(trx, flushItems(changes));
    },
    committed: (changes) => budget.flushed(changes.tokens),
  });
  const research = new ResearchRegistry(database.db, writeBehind, (hold) => budget.release(hold));
  if (config.metricsEnabled) metrics = new Metrics({ pool, writeBehind, tokenLabels: config.metricsTokenLabels });
  alerts = new Alerts({
    db: database.db,
    dialect: database.dialect,
    repo: alertsRepo,
    cipher,
    pool,
    tokens,
    logs,
    bus: () => bus,
    log: log.child({ component: 'alerts' }),
    config: { ...config.alerts, proxy: config.proxy },
    onDelivery: (result) => metrics?.alertDelivery(result),
  });
  const keyStates = new KeyStates(pool, writeBehind, log.child({ component: 'gateway' }), metrics);
  const gateway = new GatewayCore({ config, log: log.child({ component: 'gateway' }), pool, keyStates, tokens, budget, writeBehind, research, tavily, logs, adminToken: secrets.adminToken, metrics });

  const loader = new PoolLoader({ keys, plainKeys, pool, beforeRead: () => writeBehind.flush(), log });
  const reloadPool = (ids?: readonly number[]) => loader.load(ids);
  const reloadTokens = async () => tokens.load(await tokensRepo.list(true));

  const refresher = new QuotaRefresher({
    db: database.db,
    keys,
    accounts,
    logs,
    driftTolerance: config.usageDriftTolerance,
    logRetentionMs: config.logRetentionDays * DAY_MS,
    cipher,
    upstream: tavily,
    concurrency: config.refreshConcurrency,
    timeoutMs: config.refreshTimeoutMs,
    log: log.child({ component: 'refresh' }),
    plainKeys,
    beforeLoad: () => writeBehind.flush(),
    onRun: (seconds, keyFailures, ok) => metrics?.refresh(seconds, keyFailures, ok),
    // The pool takes the new figures from the refresh itself: no second read of every key.
    // This instance and the others apply the same outcomes the same way, reading nothing again.
    inTransaction: (trx, run) => alerts!.refreshed(trx, run),
    afterWrite: async (writes, accountWrites) => {
      alerts?.committed();
      await applyAndAnnounce(refreshItems(writes, accountWrites));
    },
  });

  const changes = new ChangeAnnouncer({ db: database.db, bus: () => bus, sync: () => sync, log });
  const announce = (items: SyncItem[]) => changes.announce(items);
  const applyAndAnnounce = (items: SyncItem[]) => changes.applyAndAnnounce(items);
  const keysChanged = async (ids?: readonly number[]) => {
    await reloadPool(ids);
    await announce(keyChangeItems(ids));
  };
  const accountsChanged = (rooms: ReadonlyMap<number, number | null>) =>
    applyAndAnnounce([...rooms].map(([id, remaining]): SyncItem => ['a', id, remaining]));
  const tokensChanged = async () => {
    await reloadTokens();
    await announce([['T']]);
  };
  const startedAt = new Date().toISOString();
  const version = packageVersion();
  const localId = randomBytes(6).toString('hex');
  instances = new Instances({
    self: () => ({
      id: bus?.instanceId ?? localId,
      host: HOST,
      version,
      started_at: startedAt,
      listening: bus ? bus.listening : true,
      request_log_ok: !writeBehind.health.failing,
      pending_rows: writeBehind.pendingRows,
      keys_available: pool.counts().available,
      credits_remaining: pool.creditsRemaining(),
    }),
    announce: config.database.kind === 'postgres' ? (info) => announce([['I', info]]) : null,
  });
  const peers = instances;
  const sync = new ClusterSync({
    keyStates,
    tokens,
    budget,
    research,
    reloadPool,
    reloadTokens,
    log: log.child({ component: 'sync' }),
    intervalMs: config.syncIntervalS * 1000,
    onInstance: (info) => {
      budget.peerSeen(info.id);
      // A newcomer learns what this instance holds against budgets.
      if (peers.heard(info)) budget.announceAll();
    },
  });

  const pruneLogs = () => pruneOld({ logs, research, alerts: alerts!, audit: auditRepo, retentionDays: config.logRetentionDays, auditRetentionDays: config.auditRetentionDays, log });

  if (config.database.kind === 'postgres') {
    // Listen before the first read, so that no change made in between is missed.
    bus = await PgBus.start({
      url: config.database.url,
      searchPath: opts.pgSearchPath,
      log: log.child({ component: 'sync' }),
      handlers: { onItems: (items) => sync.apply(items), onResync: () => void sync.resync(), onLag: (ms) => metrics?.syncLag(ms), onEcho: (seq) => budget.echoed(seq) },
    });
    sync.start();
  }
  await reloadPool();
  await reloadTokens();
  writeBehind.start();
  research.start();
  alerts.start();
  instances.start();

  return {
    config,
    log,
    database,
    keys,
    accounts,
    tokensRepo,
    logs,
    cipher,
    plainKeys,
    tavily,
    refresher,
    pool,
    keyStates,
    tokens,
    budget,
    writeBehind,
    research,
    gateway,
    alertsRepo,
    alerts,
    audit,
    auditRepo,
    metrics,
    adminToken: secrets.adminToken,
    bus,
    sync,
    instances: peers,
    reloadPool,
    reloadTokens,
    keysChanged,
    accountsChanged,
    tokensChanged,
    pruneLogs,
    async close() {
      sync.stop();
      peers.stop();
      research.stop();
      budget.close();
      pool.close();
      const flushed = await writeBehind.close();
      await audit.flush();
      await alerts!.close();
      await sync.settled();
      await bus?.close();
      await Promise.allSettled([tavily.close(), database.close()]);
      return flushed;
    },
  };
}

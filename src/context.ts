import type { Logger } from 'pino';
import type { Config } from './config.js';
import { KeyCipher, KeyDecryptError } from './crypto.js';
import { type DatabaseHandle, type OpenOptions, openDatabase } from './db/database.js';
import { KeyRepository } from './db/repositories/keys.js';
import { LogRepository } from './db/repositories/logs.js';
import { TokenRepository } from './db/repositories/tokens.js';
import { ResearchRegistry } from './gateway/research.js';
import { TokenRegistry } from './gateway/tokens.js';
import { WriteBehind } from './logs/write-behind.js';
import { PlainKeyCache } from './pool/key-cache.js';
import { KeyPool } from './pool/pool.js';
import { QuotaRefresher } from './quota/refresh.js';
import type { Secrets } from './secrets.js';
import { TavilyClient } from './tavily/client.js';

/** Everything the routes need, built once and passed in (never imported as a singleton). */
export interface AppContext {
  config: Config;
  log: Logger;
  database: DatabaseHandle;
  keys: KeyRepository;
  tokensRepo: TokenRepository;
  logs: LogRepository;
  cipher: KeyCipher;
  tavily: TavilyClient;
  refresher: QuotaRefresher;
  pool: KeyPool;
  tokens: TokenRegistry;
  writeBehind: WriteBehind;
  research: ResearchRegistry;
  adminToken: string;
  /** Re-reads keys into the in-memory pool: all of them, or only `ids` (after admin changes to those keys). */
  reloadPool(ids?: readonly number[]): Promise<void>;
  /** Re-reads the client tokens into memory (after admin changes). */
  reloadTokens(): Promise<void>;
  /** Deletes request-log rows older than LOG_RETENTION_DAYS and expired research tasks. */
  pruneLogs(): Promise<number>;
  close(): Promise<void>;
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
  const database = await openDatabase(config.database, opts);
  const keys = new KeyRepository(database.db, database.dialect);
  const tokensRepo = new TokenRepository(database.db);
  const logs = new LogRepository(database.db);
  const cipher = new KeyCipher(secrets.encryptionKey);
  const plainKeys = new PlainKeyCache(cipher);
  const tavily = new TavilyClient({ baseUrl: config.tavilyBaseUrl });
  const pool = new KeyPool(config.keyStrategy);
  const tokens = new TokenRegistry();
  const writeBehind = new WriteBehind({
    db: database.db,
    dialect: database.dialect,
    log: log.child({ component: 'request-log' }),
    intervalMs: opts.flushIntervalMs,
  });
  const research = new ResearchRegistry(database.db, writeBehind);

  const reloadPool = async (ids?: readonly number[]) => {
    // Pending deductions first, so that the figures read back include them.
    await writeBehind.flush();
    const rows = await keys.loadForPool(ids);
    const entries = [];
    for (const r of rows) {
      let plain: string;
      try {
        plain = plainKeys.get(r.id, r.key_ciphertext);
      } catch (err) {
        if (!(err instanceof KeyDecryptError)) throw err;
        log.error({ key_id: r.id }, 'a stored key cannot be decrypted (was ENCRYPTION_KEY changed?); it is left out of the pool');
        continue;
      }
      entries.push({
        id: r.id,
        plain,
        masked: r.key_masked,
        health: r.status,
        enabled: r.disabled_at === null,
        remaining: r.remaining_quota,
        lastUsed: r.last_used_at ? Date.parse(r.last_used_at) : 0,
      });
    }
    if (!ids) {
      plainKeys.retain(rows.map((r) => r.id));
      pool.load(entries);
      return;
    }
    const found = new Set(rows.map((r) => r.id));
    pool.update(entries, ids.filter((id) => !found.has(id)));
  };
  const reloadTokens = async () => tokens.load(await tokensRepo.list(true));

  const refresher = new QuotaRefresher({
    db: database.db,
    keys,
    cipher,
    upstream: tavily,
    concurrency: config.refreshConcurrency,
    timeoutMs: config.refreshTimeoutMs,
    log: log.child({ component: 'refresh' }),
    plainKeys,
    beforeLoad: () => writeBehind.flush(),
    // The pool takes the new figures from the refresh itself: no second read of every key.
    afterWrite: (writes) => {
      for (const w of writes) {
        if (w.ok) pool.refreshed(w.id, w.status, w.remaining_quota);
        else if (w.status !== null) pool.refreshed(w.id, w.status);
      }
    },
  });

  const pruneLogs = async () => {
    const now = Date.now();
    const n = await logs.prune(new Date(now - config.logRetentionDays * DAY_MS).toISOString(), new Date(now).toISOString());
    research.prune(now);
    if (n > 0) log.info({ rows: n, days: config.logRetentionDays }, 'pruned old request-log rows');
    return n;
  };

  await reloadPool();
  await reloadTokens();
  writeBehind.start();

  return {
    config,
    log,
    database,
    keys,
    tokensRepo,
    logs,
    cipher,
    tavily,
    refresher,
    pool,
    tokens,
    writeBehind,
    research,
    adminToken: secrets.adminToken,
    reloadPool,
    reloadTokens,
    pruneLogs,
    async close() {
      pool.close();
      await writeBehind.close();
      await Promise.allSettled([tavily.close(), database.close()]);
    },
  };
}

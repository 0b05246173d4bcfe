import type { Logger } from 'pino';
import type { Config } from './config.js';
import { KeyCipher } from './crypto.js';
import { type DatabaseHandle, type OpenOptions, openDatabase } from './db/database.js';
import { KeyRepository } from './db/repositories/keys.js';
import { QuotaRefresher } from './quota/refresh.js';
import type { Secrets } from './secrets.js';
import { TavilyClient } from './tavily/client.js';

/** Everything the routes need, built once and passed in (never imported as a singleton). */
export interface AppContext {
  config: Config;
  log: Logger;
  database: DatabaseHandle;
  keys: KeyRepository;
  cipher: KeyCipher;
  tavily: TavilyClient;
  refresher: QuotaRefresher;
  adminToken: string;
  close(): Promise<void>;
}

export type ContextOptions = OpenOptions;

export async function createContext(
  config: Config,
  secrets: Pick<Secrets, 'adminToken' | 'encryptionKey'>,
  log: Logger,
  opts: ContextOptions = {},
): Promise<AppContext> {
  const database = await openDatabase(config.database, opts);
  const keys = new KeyRepository(database.db, database.dialect);
  const cipher = new KeyCipher(secrets.encryptionKey);
  const tavily = new TavilyClient({ baseUrl: config.tavilyBaseUrl });
  const refresher = new QuotaRefresher({
    db: database.db,
    keys,
    cipher,
    upstream: tavily,
    concurrency: config.refreshConcurrency,
    timeoutMs: config.refreshTimeoutMs,
    log: log.child({ component: 'refresh' }),
  });
  return {
    config,
    log,
    database,
    keys,
    cipher,
    tavily,
    refresher,
    adminToken: secrets.adminToken,
    async close() {
      await Promise.allSettled([tavily.close(), database.close()]);
    },
  };
}

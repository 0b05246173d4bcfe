import type { Logger } from 'pino';
import type { KeyHealth } from '../db/schema.js';
import type { Outbox } from './outbox.js';
import type { Metrics } from '../metrics.js';
import type { KeyPool, PoolKey } from './pool.js';

/** A failing key rests this long after its first failure, twice as long after each next one, up to the maximum. */
export const FAIL_REST_FIRST_MS = 5_000;
export const FAIL_REST_MAX_MS = 5 * 60_000;

/**
 * The one place a key's state changes: its health (invalid, exhausted), its rests, and the
 * credits it spends. Each change the gateway makes updates the in-memory pool and queues its
 * write in one call, so the pool, the database and the other instances cannot disagree.
 * Changes already stored by someone else (a refresh's transaction, another instance) are
 * applied to the pool through `stored`.
 */
export class KeyStates {
  constructor(
    private readonly pool: KeyPool,
    private readonly outbox: Outbox,
    private readonly log: Logger,
    private readonly metrics: Metrics | null = null,
  ) {}

  /** Tavily answered 401: the key is invalid until a refresh or an admin says otherwise. */
  invalid(key: PoolKey, message: string, endpoint: string): void {
    this.metrics?.failover('invalid');
    this.pool.setHealth(key, 'invalid');
    this.outbox.keyHealth(key.id, 'invalid', `invalid key (401: ${message})`);
    this.log.warn({ key_id: key.id, endpoint }, 'key rejected by Tavily (401): marked invalid');
  }

  /**
   * Tavily answered 432 or 433: the key, or its account, has no credits left. When the key
   * belongs to a declared account and the account is what ran out (a 433 is always the
   * account's pay-as-you-go; a 432 is the account's plan unless the key's own limit is the
   * smaller room), every key of the account is marked exhausted at once.
   */
  exhausted(key: PoolKey, status: number, message: string, endpoint: string): void {
    this.metrics?.failover('exhausted');
    const account = key.account;
    if (account && accountRanOut(key, status)) {
      const why = `credits exhausted: its account is out of credits (${status}: ${message})`;
      this.pool.setAccountRemaining(account.id, 0);
      this.outbox.accountRemaining(account.id, 0);
      for (const k of account.keys) {
        this.pool.setHealth(k, 'exhausted');
        this.outbox.keyHealth(k.id, 'exhausted', why);
      }
      this.log.warn({ key_id: key.id, account_id: account.id, keys: account.keys.size, endpoint, status }, 'account out of credits: its keys are marked exhausted');
      return;
    }
    this.pool.setHealth(key, 'exhausted');
    this.outbox.keyHealth(key.id, 'exhausted', `credits exhausted (${status}: ${message})`);
    this.log.warn({ key_id: key.id, endpoint, status }, 'key out of credits: marked exhausted');
  }

  /** Tavily answered 429: the key rests for Retry-After seconds. */
  rateLimited(key: PoolKey, seconds: number, endpoint: string): void {
    this.metrics?.failover('rate_limited');
    this.pool.coolDown(key, seconds);
    this.outbox.keyCooldown(key.id, key.coolUntil, `rate limited by Tavily (429): resting ${seconds} s`);
    this.log.warn({ key_id: key.id, endpoint, retry_after_s: seconds }, 'key rate limited by Tavily: cooling down');
  }

  /**
   * The key's request failed upstream (5xx, a timeout, a connection error, a broken or huge
   * answer): it rests 5 s, twice as long after each failure in a row, up to 5 min, so that
   * healthy keys take the traffic. Its status stays active: only a 401 makes a key invalid.
   */
  failed(key: PoolKey, why: string, endpoint: string, now = Date.now()): void {
    this.metrics?.failover('failure');
    key.failStreak++;
    const restMs = Math.min(FAIL_REST_MAX_MS, FAIL_REST_FIRST_MS * 2 ** Math.min(key.failStreak - 1, 16));
    this.pool.coolUntil(key, now + restMs, now);
    const reason = `${key.failStreak === 1 ? 'failed' : `failed ${key.failStreak} times in a row`} (${why}): resting ${Math.round(restMs / 1000)} s`;
    this.outbox.keyCooldown(key.id, key.coolUntil, reason);
    this.log.warn({ key_id: key.id, endpoint, failures: key.failStreak, rest_s: restMs / 1000 }, `key failed upstream: ${why}`);
  }

  /** The key answered: a run of failures is over. */
  answered(key: PoolKey): void {
    if (key.failStreak !== 0) key.failStreak = 0;
  }

  /** Credits the key spent on a request (and its use, at `at`), even 0: the key was used. */
  spend(key: PoolKey, credits: number, at: string): void {
    if (credits > 0) this.pool.deduct(key, credits);
    this.outbox.keySpend(key.id, credits, at);
  }

  /** Changes already in the database: the pool takes them as they are. */
  readonly stored = {
    spent: (id: number, credits: number): void => {
      const k = this.pool.get(id);
      if (k) this.pool.deduct(k, credits);
    },
    health: (id: number, health: KeyHealth): void => {
      const k = this.pool.get(id);
      if (k) this.pool.setHealth(k, health);
    },
    rest: (id: number, untilMs: number): void => {
      const k = this.pool.get(id);
      if (k) this.pool.coolUntil(k, untilMs);
    },
    refreshed: (id: number, health: KeyHealth, remaining?: number | null): void => this.pool.refreshed(id, health, remaining),
    account: (id: number, remaining: number | null): void => this.pool.setAccountRemaining(id, remaining),
  };
}

/**
 * Whether a 432 or 433 on a key of a declared account means the account ran out. A 433 is
 * the account's pay-as-you-go. For a 432 the figures tell: the key's own figure is the least
 * of its own limit's room and its account's room when read, less what it spent since; when it
 * is below the account's current room, the key's own limit is what binds; otherwise (or with
 * no figures to compare) the account's plan does.
 */
export function accountRanOut(key: PoolKey, status: number): boolean {
  if (status === 433) return true;
  const shared = key.account?.remaining ?? null;
  if (key.remaining === null) return shared !== null;
  if (shared === null) return false;
  return key.remaining >= shared;
}

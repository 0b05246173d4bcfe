import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { DatabaseHandle } from '../db/database.js';
import type { QuotaRefresher } from './refresh.js';
import { Scheduler } from './scheduler.js';

/** What the jobs run, and when. */
export interface JobDeps {
  database: Pick<DatabaseHandle, 'db' | 'dialect'>;
  config: Pick<Config, 'refreshCron' | 'exhaustedRecheckCron' | 'refreshStaleAfterS'>;
  log: Logger;
  refresher: Pick<QuotaRefresher, 'refresh'>;
  /** Deletes what is older than the retention periods. */
  prune(): Promise<unknown>;
}

export const PRUNE_LOGS_CRON = '17 3 * * *';
/** A key checked for a new cycle within this long is not checked again by the low-rate job. */
const RECHECK_STALE_AFTER_S = 3600;

/**
 * The gateway's periodic jobs: the refresh of stale keys (REFRESH_CRON), the low-rate check of
 * exhausted keys for a new billing cycle (EXHAUSTED_RECHECK_CRON), and request-log pruning.
 *
 * Tavily counts usage per billing cycle, which starts on each account's own day: there is no
 * calendar reset. A key out of credits is checked again every few hours, and its next cycle is
 * seen as a fall in the usage it reports; it (or its whole account) is then active again.
 */
export function createScheduler(ctx: JobDeps): Scheduler {
  const s = new Scheduler({ db: ctx.database.db, dialect: ctx.database.dialect, log: ctx.log.child({ component: 'scheduler' }) });
  s.add({
    name: 'refresh',
    cron: ctx.config.refreshCron,
    // Only keys not refreshed lately: instances whose timers fire a moment apart do not call
    // /usage twice for a key, and Tavily's ~10 calls per 10 minutes per key is respected. Keys
    // out of credits are left to the low-rate check.
    run: () => ctx.refresher.refresh({ staleAfterS: ctx.config.refreshStaleAfterS, exhausted: 'skip' }),
  });
  s.add({ name: 'recheck-exhausted', cron: ctx.config.exhaustedRecheckCron, run: () => recheckExhausted(ctx) });
  s.add({ name: 'prune-logs', cron: PRUNE_LOGS_CRON, run: () => ctx.prune() });
  return s;
}

/** Checks the keys out of credits: those whose billing cycle restarted come back with their new figures. */
export async function recheckExhausted(ctx: Pick<JobDeps, 'refresher' | 'log'>): Promise<{ checked: number; new_cycles: number }> {
  const r = await ctx.refresher.refresh({ exhausted: 'only', staleAfterS: RECHECK_STALE_AFTER_S });
  if (r.total > 0) ctx.log.info({ keys: r.total, new_cycles: r.new_cycles }, 'exhausted keys checked for a new billing cycle');
  return { checked: r.total, new_cycles: r.new_cycles };
}

import type { AppContext } from '../context.js';
import { Scheduler } from './scheduler.js';

/** At 00:05 UTC on the 1st: credits reset (Tavily does not document when; gateways assume the 1st). */
export const MONTHLY_RESET_CRON = '5 0 1 * *';
export const PRUNE_LOGS_CRON = '17 3 * * *';

/**
 * The gateway's periodic jobs: the refresh of stale keys (REFRESH_CRON), the monthly return of
 * exhausted keys, and request-log pruning.
 */
export function createScheduler(ctx: AppContext): Scheduler {
  const s = new Scheduler({ db: ctx.database.db, dialect: ctx.database.dialect, log: ctx.log.child({ component: 'scheduler' }) });
  s.add({
    name: 'refresh',
    cron: ctx.config.refreshCron,
    // Only keys not refreshed lately: instances whose timers fire a moment apart do not call
    // /usage twice for a key, and Tavily's ~10 calls per 10 minutes per key is respected.
    run: () => ctx.refresher.refresh({ staleAfterS: ctx.config.refreshStaleAfterS }),
  });
  s.add({ name: 'monthly-reset', cron: MONTHLY_RESET_CRON, run: () => monthlyReset(ctx) });
  s.add({ name: 'prune-logs', cron: PRUNE_LOGS_CRON, run: () => ctx.pruneLogs() });
  return s;
}

/** Exhausted keys become eligible again, and are refreshed to learn what the new month gives them. */
export async function monthlyReset(ctx: AppContext): Promise<{ reset: number }> {
  const now = new Date().toISOString();
  const rows = await ctx.database.db
    .updateTable('tavily_keys')
    .set({ status: 'active', last_error: null, updated_at: now })
    .where('status', '=', 'exhausted')
    .returning('id')
    .execute();
  const ids = rows.map((r) => r.id);
  for (let i = 0; i < ids.length; i += 10_000) await ctx.refresher.refresh({ ids: ids.slice(i, i + 10_000) });
  // Keys whose refresh failed (a timeout, say) are active again too: the pool must know.
  await ctx.keysChanged(ids);
  ctx.log.info({ keys: ids.length }, 'monthly reset: exhausted keys are eligible again');
  return { reset: ids.length };
}

/**
 * When credits run out at the recent burn rate: what was spent in the last BURN_WINDOW_DAYS,
 * per day. The alerts' "days left" and the dashboard's "runs dry" are both this. It imports
 * only cycles.ts, which imports nothing: the dashboard uses both as they are.
 */
import { nextReset } from './cycles.js';

export const BURN_WINDOW_DAYS = 7;
const DAY_MS = 86_400_000;

/** Credits spent a day over the window. */
export function perDay(spentInWindow: number): number {
  return spentInWindow / BURN_WINDOW_DAYS;
}

/** Days the credits last at the window's rate; null when nothing was spent in it. */
export function daysLeft(remaining: number, spentInWindow: number): number | null {
  const rate = perDay(spentInWindow);
  return rate > 0 ? remaining / rate : null;
}

/** The day the credits run out at the window's rate; null when nothing was spent in it. */
export function runsDry(remaining: number, spentInWindow: number, now = Date.now()): Date | null {
  const days = daysLeft(remaining, spentInWindow);
  return days === null ? null : new Date(now + days * DAY_MS);
}

/** The start of the window ending `now` (ISO). */
export function burnWindowStart(now = Date.now()): string {
  return new Date(now - BURN_WINDOW_DAYS * DAY_MS).toISOString();
}

/**
 * Credits that renew: an account (or a key of its own, or keys of their own that renew on the
 * same day) with what it has left, what it gets at each reset, and when its cycle began.
 */
export interface RenewingCredits {
  remaining: number;
  /** Credits each cycle brings (null: not known, counted as none). */
  limit: number | null;
  /** Epoch ms the current cycle began, as the pool saw it; null: not seen (the calendar month is assumed). */
  cycleStartedAt: number | null;
}

/** The most days the forecast looks ahead: a pool that lasts longer never runs dry as far as it can tell. */
export const FORECAST_HORIZON_DAYS = 400;

/**
 * The day the pool runs dry at `perDayRate` credits a day, counting the resets to come: each
 * day's demand is spent from the credits that lapse first (as `expiring-first` spends them);
 * at a reset what was left lapses and the cycle's credits come in. Null when nothing is spent,
 * or when the pool lasts beyond FORECAST_HORIZON_DAYS (resets bring more than is spent).
 */
export function runsDryWithResets(units: readonly RenewingCredits[], perDayRate: number, now = Date.now()): Date | null {
  if (!(perDayRate > 0)) return null;
  const perMs = perDayRate / DAY_MS;
  const end = now + FORECAST_HORIZON_DAYS * DAY_MS;
  const state = units.map((u) => ({ left: Math.max(0, u.remaining), limit: Math.max(0, u.limit ?? 0), start: u.cycleStartedAt, next: nextReset(u.cycleStartedAt, now).at }));
  if (state.length === 0) return new Date(now);
  // From one reset to the next, demand runs on evenly: it runs dry within the stretch when all
  // that is left is less than the stretch asks; else it is spent where it lapses first.
  let t = now;
  while (t < end) {
    state.sort((a, b) => a.next - b.next);
    const until = Math.min(state[0]!.next, end);
    let need = (until - t) * perMs;
    const left = state.reduce((n, s) => n + s.left, 0);
    if (left < need) return new Date(t + left / perMs);
    for (const s of state) {
      if (need <= 0) break;
      const take = Math.min(s.left, need);
      s.left -= take;
      need -= take;
    }
    t = until;
    for (const s of state) {
      if (s.next > t) continue;
      // The reset: what was left lapses, the cycle's credits come in, and a new cycle begins
      // (one not seen keeps to the calendar month).
      s.left = s.limit;
      if (s.start !== null) s.start = s.next;
      s.next = nextReset(s.start, s.next).at;
    }
  }
  return null;
}

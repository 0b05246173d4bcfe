/**
 * When credits run out at the recent burn rate: what was spent in the last BURN_WINDOW_DAYS,
 * per day. The alerts' "days left" and the dashboard's "runs dry" are both this. No imports:
 * the dashboard uses it as it is.
 */
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

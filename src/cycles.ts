/**
 * Billing cycles: Tavily resets an account's plan credits at the start of each cycle, on the
 * account's own day of the month (its subscription date), and what was left lapses. The pool
 * sees a cycle start as a fall in `/usage` (`cycle_started_at`: the check that first saw it, so
 * the reset was then or a little before). No imports: the pool, the forecast and the dashboard
 * use it as it is.
 */

/** When the current cycle's credits lapse, and whether that comes from a seen cycle start. */
export interface Renewal {
  /** Epoch ms of the next reset. */
  at: number;
  /** 'cycle': a month after a cycle start the pool saw; 'calendar': not seen yet, taken as the 1st of next month (UTC). */
  basis: 'cycle' | 'calendar';
}

/** A stored cycle start (ISO text, or null) as epoch ms; null when absent or unreadable. */
export function cycleStart(iso: string | null | undefined): number | null {
  if (!iso) return null;
  const t = Date.parse(iso);
  return Number.isFinite(t) ? t : null;
}

/** `t` moved by `months` calendar months (UTC), its day kept or, in a shorter month, its last day. */
export function addMonths(t: number, months: number): number {
  const d = new Date(t);
  const day = d.getUTCDate();
  const target = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + months, 1, d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds(), d.getUTCMilliseconds()));
  const last = new Date(Date.UTC(target.getUTCFullYear(), target.getUTCMonth() + 1, 0)).getUTCDate();
  target.setUTCDate(Math.min(day, last));
  return target.getTime();
}

/** The start of the next UTC month after `now`. */
export function nextCalendarMonth(now: number): number {
  const d = new Date(now);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
}

/**
 * The next reset after `now`: a whole number of months after the cycle start seen (however
 * long ago it was), or, with none seen, the next calendar month.
 */
export function nextReset(cycleStartedAt: number | null, now: number): Renewal {
  if (cycleStartedAt === null || !Number.isFinite(cycleStartedAt)) return { at: nextCalendarMonth(now), basis: 'calendar' };
  // Months between the two, then a step or two to land just after now.
  const a = new Date(cycleStartedAt);
  const b = new Date(now);
  let months = Math.max(0, (b.getUTCFullYear() - a.getUTCFullYear()) * 12 + (b.getUTCMonth() - a.getUTCMonth()) - 1);
  let at = addMonths(cycleStartedAt, months);
  while (at <= now) at = addMonths(cycleStartedAt, ++months);
  return { at, basis: 'cycle' };
}

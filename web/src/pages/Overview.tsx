import { useEffect, useState } from 'react';
import { type AccountList, type Summary, api, runsDry } from '../api';
import { BarChart } from '../charts';
import { ErrorAlert } from '../components';

const fmt = new Intl.NumberFormat('en-US');
const DAY = 24 * 3600_000;

interface Stats {
  by_hour: { bucket: string; requests: number; credits: number; errors: number }[];
  by_day: { bucket: string; requests: number; credits: number; errors: number }[];
}

/** The day the pool runs dry at the last 7 days' burn rate, or null when nothing was spent. */
export function forecast(remaining: number, byDay: Stats['by_day'], now = Date.now()): Date | null {
  const since = new Date(now - 7 * DAY).toISOString().slice(0, 10);
  return runsDry(remaining, byDay.filter((d) => d.bucket >= since).reduce((s, d) => s + d.credits, 0), now);
}

/** The last `n` buckets up to now (days `YYYY-MM-DD`, or hours `YYYY-MM-DDTHH:00:00Z`), empty ones as zero. */
export function window<T extends { bucket: string }>(rows: T[], n: number, stepMs: number, key: (d: Date) => string, empty: (bucket: string) => T): T[] {
  const byBucket = new Map(rows.map((r) => [r.bucket, r]));
  const now = Date.now();
  return Array.from({ length: n }, (_, i) => {
    const b = key(new Date(now - (n - 1 - i) * stepMs));
    return byBucket.get(b) ?? empty(b);
  });
}

const dayKey = (d: Date) => d.toISOString().slice(0, 10);
const hourKey = (d: Date) => `${d.toISOString().slice(0, 13)}:00:00Z`;
const zero = (bucket: string) => ({ bucket, requests: 0, credits: 0, errors: 0 });

export function OverviewPage() {
  const [summary, setSummary] = useState<Summary | null>(null);
  const [stats, setStats] = useState<Stats | null>(null);
  const [accounts, setAccounts] = useState<AccountList | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    const from = new Date(Date.now() - 14 * DAY).toISOString();
    Promise.all([api<Summary>('/summary'), api<Stats>(`/stats?from=${encodeURIComponent(from)}`), api<AccountList>('/accounts?limit=1000')]).then(([s, st, ac]) => {
      setSummary(s);
      setStats(st);
      setAccounts(ac);
    }, (e: Error) => setError(e.message));
  }, []);

  if (error) return <ErrorAlert message={error} />;
  if (!summary || !stats || !accounts) return <p aria-busy="true">Loading…</p>;
  // Accounts that run dry first (at their own 7-day burn rate); those out of credits first of all.
  const byDryDate = accounts.items
    .map((a) => ({ a, dry: a.remaining === 0 ? new Date(0) : a.remaining !== null ? runsDry(a.remaining, a.spent_7d) : null }))
    .sort((x, y) => (x.dry?.getTime() ?? Infinity) - (y.dry?.getTime() ?? Infinity))
    .slice(0, 5);
  const last = summary.refresh.last;
  const dry = forecast(summary.total_remaining, stats.by_day);
  return (
    <section aria-labelledby="overview-title">
      <h1 id="overview-title">Overview</h1>
      <div className="cards">
        <figure className="card" aria-label="Total remaining credits">
          <figcaption>Credits remaining</figcaption>
          <strong data-testid="total-remaining">{fmt.format(summary.total_remaining)}</strong>
          {summary.unknown_quota > 0 && <small>{summary.unknown_quota} keys not refreshed yet</small>}
          {summary.accounts > 0 && <small>keys of one Tavily account counted once ({summary.accounts} accounts)</small>}
        </figure>
        <figure className="card" aria-label="Keys by status">
          <figcaption>Keys ({summary.keys.total})</figcaption>
          <ul className="statuses">
            {(['active', 'exhausted', 'invalid', 'disabled'] as const).map((s) => (
              <li key={s}>
                <span className={`badge ${s}`}>{s}</span> <span data-testid={`count-${s}`}>{summary.keys.by_status[s]}</span>
              </li>
            ))}
          </ul>
        </figure>
        <figure className="card" aria-label="Forecast">
          <figcaption>Runs dry</figcaption>
          <strong data-testid="forecast">{dry ? dry.toLocaleDateString() : 'not at this rate'}</strong>
          <small>at the last 7 days’ burn rate</small>
        </figure>
        <figure className="card" aria-label="Last refresh">
          <figcaption>Last refresh</figcaption>
          {last ? (
            <p>
              {new Date(last.finished_at).toLocaleString()}: {last.success_count} of {last.total} keys refreshed
              {last.failed_count > 0 ? `, ${last.failed_count} failed` : ''} in {fmt.format(last.duration_ms)} ms
            </p>
          ) : (
            <p>No refresh since the server started.</p>
          )}
        </figure>
      </div>
      {byDryDate.length > 0 && (
        <figure className="card" aria-label="Accounts">
          <figcaption>
            Accounts (<a href="#/accounts">{accounts.total}</a>): the first to run dry
          </figcaption>
          <ul className="statuses">
            {byDryDate.map(({ a, dry }) => (
              <li key={a.id}>
                {a.name}: {a.remaining === null ? 'unknown' : fmt.format(a.remaining)} left,{' '}
                {a.remaining === 0 ? 'out of credits' : dry ? `runs dry ${dry.toLocaleDateString()}` : 'not at this rate'}
              </li>
            ))}
          </ul>
        </figure>
      )}
      <div className="cards wide">
        <BarChart
          title="Credits spent per day (14 days)"
          series={['credits']}
          bars={window(stats.by_day, 14, DAY, dayKey, zero).map((d) => ({ label: d.bucket.slice(5), values: [d.credits] }))}
        />
        <BarChart
          title="Requests per hour by outcome (24 hours, UTC)"
          series={['succeeded', 'failed']}
          bars={window(stats.by_hour, 24, 3600_000, hourKey, zero).map((h) => ({ label: `${h.bucket.slice(11, 13)}h`, values: [h.requests - h.errors, h.errors] }))}
        />
      </div>
    </section>
  );
}

import { useEffect, useState } from 'react';
import { type Summary, api } from '../api';

const fmt = new Intl.NumberFormat('en-US');

export function OverviewPage() {
  const [summary, setSummary] = useState<Summary | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    api<Summary>('/summary').then(setSummary, (e: Error) => setError(e.message));
  }, []);

  if (error) return <p role="alert" className="error">{error}</p>;
  if (!summary) return <p aria-busy="true">Loading…</p>;
  const last = summary.refresh.last;
  return (
    <section aria-labelledby="overview-title">
      <h1 id="overview-title">Overview</h1>
      <div className="cards">
        <figure className="card" aria-label="Total remaining credits">
          <figcaption>Credits remaining</figcaption>
          <strong data-testid="total-remaining">{fmt.format(summary.total_remaining)}</strong>
          {summary.unknown_quota > 0 && <small>{summary.unknown_quota} keys not refreshed yet</small>}
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
    </section>
  );
}

import { useCallback, useEffect, useState } from 'react';
import { type Account, type AccountList, api, runsDry } from '../api';
import { DataTable, ErrorAlert } from '../components';

const fmt = new Intl.NumberFormat('en-US');

/** "Tavily counted 120 credits since …; 40 went through the pool." */
export function driftText(d: NonNullable<Account['drift']>): string {
  return `Tavily counted ${fmt.format(d.tavily)} credits between ${new Date(d.since).toLocaleString()} and ${new Date(d.at).toLocaleString()}; ${fmt.format(d.pool)} went through the pool`;
}

/** Accounts: keys that share one Tavily account's credits, each counted once. */
export function AccountsPage() {
  const [list, setList] = useState<AccountList | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [message, setMessage] = useState<string | null>(null);

  const load = useCallback(async () => {
    try {
      setList(await api<AccountList>('/accounts?limit=1000'));
      setError(null);
    } catch (e) {
      setError((e as Error).message);
    }
  }, []);
  useEffect(() => {
    void load();
  }, [load]);

  const act = async (done: string, run: () => Promise<unknown>) => {
    try {
      await run();
      setMessage(done);
      await load();
    } catch (e) {
      setError((e as Error).message);
    }
  };

  return (
    <section aria-labelledby="accounts-title">
      <h1 id="accounts-title">Accounts</h1>
      <p className="muted">
        Keys of one Tavily account share its credits: the pool counts each account once, and when one of its keys spends, every key of it
        has that much less. Put keys in an account when adding them (an <code>account</code> column, or <code>email =&gt; key</code> lines),
        from the Keys page, or by confirming a suggestion there.
      </p>
      {message && <p role="status">Done: {message}.</p>}
      <ErrorAlert message={error} />
      {!list ? (
        <p aria-busy="true">Loading…</p>
      ) : list.items.length === 0 ? (
        <p>No accounts yet: each key is its own account.</p>
      ) : (
        <DataTable label="Accounts" columns={['Name', 'Keys', 'Remaining', 'Plan', 'Billing cycle', 'Last 7 days', 'Runs dry', 'Usage elsewhere', 'Actions']}>
          {list.items.map((a) => {
            const dry = a.remaining !== null ? runsDry(a.remaining, a.spent_7d) : null;
            return (
              <tr key={a.id}>
                <td>
                  <a href={`#/keys?account=${a.id}`}>{a.name}</a>
                </td>
                <td>
                  {a.keys.total} <small className="muted">({a.keys.active} active{a.keys.exhausted ? `, ${a.keys.exhausted} exhausted` : ''}{a.keys.invalid ? `, ${a.keys.invalid} invalid` : ''})</small>
                </td>
                <td data-testid={`account-remaining-${a.id}`}>{a.remaining === null ? <span className="muted">unknown</span> : fmt.format(a.remaining)}</td>
                <td>
                  {a.plan ?? '–'}
                  {a.plan_limit !== null && <small className="muted"> {fmt.format(a.plan_usage ?? 0)} / {fmt.format(a.plan_limit)}</small>}
                </td>
                <td>{a.cycle_started_at ? `restarted by ${new Date(a.cycle_started_at).toLocaleString()}` : <span className="muted">no restart seen yet</span>}</td>
                <td>{fmt.format(a.spent_7d)}</td>
                <td>{a.remaining === 0 ? 'out of credits' : dry ? dry.toLocaleDateString() : <span className="muted">not at this rate</span>}</td>
                <td className="error-cell">{a.drift ? driftText(a.drift) : ''}</td>
                <td className="actions">
                  <button
                    type="button"
                    className="secondary"
                    aria-label={`Rename ${a.name}`}
                    onClick={() => {
                      const name = window.prompt(`New name for ${a.name}`, a.name);
                      if (name && name.trim() && name.trim() !== a.name) void act(`renamed ${a.name} to ${name.trim()}`, () => api(`/accounts/${a.id}`, { method: 'PATCH', json: { name: name.trim() } }));
                    }}
                  >
                    Rename
                  </button>
                  {a.drift && (
                    <button type="button" className="secondary" aria-label={`Dismiss the usage finding of ${a.name}`} onClick={() => act(`dismissed the finding of ${a.name}`, () => api(`/accounts/${a.id}`, { method: 'PATCH', json: { drift: null } }))}>
                      Dismiss
                    </button>
                  )}
                  <button
                    type="button"
                    className="danger"
                    aria-label={`Delete ${a.name}`}
                    onClick={() => {
                      if (window.confirm(`Delete the account ${a.name}? Its keys stay, each its own account.`)) void act(`deleted ${a.name}`, () => api(`/accounts/${a.id}`, { method: 'DELETE' }));
                    }}
                  >
                    Delete
                  </button>
                </td>
              </tr>
            );
          })}
        </DataTable>
      )}
    </section>
  );
}

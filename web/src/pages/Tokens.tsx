import { type FormEvent, useCallback, useEffect, useState } from 'react';
import { api } from '../api';
import { DataTable, ErrorAlert } from '../components';

interface Token {
  id: number;
  name: string;
  token_prefix: string;
  monthly_budget: number | null;
  rpm_limit: number | null;
  month: string;
  month_spent: number;
  revoked_at: string | null;
  last_used_at: string | null;
}

const fmt = new Intl.NumberFormat('en-US');
const optionalNumber = (v: string) => (v.trim() === '' ? null : Number(v));

export function TokensPage() {
  const [items, setItems] = useState<Token[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [created, setCreated] = useState<string | null>(null);
  const [copied, setCopied] = useState(false);
  const [name, setName] = useState('');
  const [budget, setBudget] = useState('');
  const [rpm, setRpm] = useState('');

  const load = useCallback(async () => {
    try {
      setItems((await api<{ items: Token[] }>('/tokens')).items);
    } catch (e) {
      setError((e as Error).message);
    }
  }, []);
  useEffect(() => {
    void load();
  }, [load]);

  const create = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      const r = await api<{ token: string }>('/tokens', { json: { name: name.trim(), monthly_budget: optionalNumber(budget), rpm_limit: optionalNumber(rpm) } });
      setCreated(r.token);
      setCopied(false);
      setName('');
      setBudget('');
      setRpm('');
      await load();
    } catch (err) {
      setError((err as Error).message);
    }
  };

  const revoke = async (t: Token) => {
    if (!window.confirm(`Revoke "${t.name}"? Clients using it are refused at once.`)) return;
    try {
      await api(`/tokens/${t.id}`, { method: 'DELETE' });
      await load();
    } catch (err) {
      setError((err as Error).message);
    }
  };

  return (
    <section aria-labelledby="tokens-title">
      <h1 id="tokens-title">Client tokens</h1>
      <form className="panel toolbar" onSubmit={create} aria-label="Create a token">
        <label>
          Name <input value={name} onChange={(e) => setName(e.target.value)} required maxLength={100} />
        </label>
        <label>
          Monthly budget (credits) <input type="number" min={0} value={budget} onChange={(e) => setBudget(e.target.value)} placeholder="none" />
        </label>
        <label>
          Requests per minute <input type="number" min={1} value={rpm} onChange={(e) => setRpm(e.target.value)} placeholder="no limit" />
        </label>
        <button type="submit" disabled={name.trim() === ''}>Create token</button>
      </form>
      {created && (
        <div role="status" aria-label="New token" className="panel">
          <p>Copy the token now: it is shown this once.</p>
          <code data-testid="new-token">{created}</code>{' '}
          <button
            type="button"
            className="secondary"
            onClick={() => navigator.clipboard.writeText(created).then(() => setCopied(true), () => setCopied(false))}
          >
            {copied ? 'Copied' : 'Copy'}
          </button>
        </div>
      )}
      <ErrorAlert message={error} />
      {!items ? (
        <p aria-busy="true">Loading…</p>
      ) : items.length === 0 ? (
        <p>No tokens yet: create one for your clients.</p>
      ) : (
        <DataTable label="Tokens" columns={['Name', 'Token', 'Spent this month', 'Budget', 'RPM limit', 'Last used', 'Actions']}>
              {items.map((t) => (
                <tr key={t.id}>
                  <td>{t.name}</td>
                  <td className="mono">{t.token_prefix}</td>
                  <td data-testid={`spent-${t.id}`}>{fmt.format(t.month_spent)}</td>
                  <td>{t.monthly_budget === null ? 'none' : fmt.format(t.monthly_budget)}</td>
                  <td>{t.rpm_limit ?? 'none'}</td>
                  <td>{t.last_used_at ? new Date(t.last_used_at).toLocaleString() : 'never'}</td>
                  <td>
                    <button type="button" className="danger" aria-label={`Revoke ${t.name}`} onClick={() => revoke(t)}>Revoke</button>
                  </td>
                </tr>
              ))}
        </DataTable>
      )}
    </section>
  );
}

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
  endpoints: string[] | null;
  networks: string[] | null;
  expires_at: string | null;
  caps: { max_credits?: number; max_results?: number; advanced?: boolean; research_pro?: boolean } | null;
}

/** A token's scopes in a line: what it may use, from where, until when, with which caps. */
function scopesText(t: Token): string {
  const parts: string[] = [];
  if (t.endpoints) parts.push(`only ${t.endpoints.join(', ')}`);
  if (t.networks) parts.push(`from ${t.networks.join(', ')}`);
  if (t.expires_at) parts.push(`until ${new Date(t.expires_at).toLocaleString()}`);
  const c = t.caps;
  if (c) {
    if (c.advanced === false) parts.push('no advanced');
    if (c.research_pro === false) parts.push('no pro research');
    if (c.max_results !== undefined) parts.push(`≤ ${c.max_results} results`);
    if (c.max_credits !== undefined) parts.push(`≤ ${c.max_credits} credits a request`);
  }
  return parts.length ? parts.join('; ') : 'everything';
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
        <DataTable label="Tokens" columns={['Name', 'Token', 'Spent this month', 'Budget', 'RPM limit', 'May', 'Last used', 'Actions']}>
              {items.map((t) => (
                <tr key={t.id}>
                  <td>{t.name}</td>
                  <td className="mono">{t.token_prefix}</td>
                  <td data-testid={`spent-${t.id}`}>{fmt.format(t.month_spent)}</td>
                  <td>{t.monthly_budget === null ? 'none' : fmt.format(t.monthly_budget)}</td>
                  <td>{t.rpm_limit ?? 'none'}</td>
                  <td>{scopesText(t)}</td>
                  <td>{t.last_used_at ? new Date(t.last_used_at).toLocaleString() : 'never'}</td>
                  <td>
                    <a href={`#/logs?token_id=${t.id}&status=403`} aria-label={`Refusals of ${t.name}`}>
                      Refusals
                    </a>{' '}
                    <button type="button" className="danger" aria-label={`Revoke ${t.name}`} onClick={() => revoke(t)}>Revoke</button>
                  </td>
                </tr>
              ))}
        </DataTable>
      )}
    </section>
  );
}

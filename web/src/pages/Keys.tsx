import { type ChangeEvent, type ReactNode, useCallback, useEffect, useRef, useState } from 'react';
import { DataTable, ErrorAlert } from '../components';
import { type AccountList, type ImportResult, type Key, type RefreshResult, type RefreshStatus, type Suggestion, api } from '../api';
import { driftText } from './Accounts';

const PAGE = 50;
const STATUSES = ['active', 'exhausted', 'invalid', 'disabled'] as const;

function QuotaBar({ k }: { k: Key }) {
  if (k.remaining_quota === null) return <span className="muted">unknown</span>;
  const limit = k.key_limit ?? k.plan_limit ?? k.remaining_quota;
  const pct = limit > 0 ? Math.max(0, Math.min(100, (k.remaining_quota / limit) * 100)) : 0;
  return (
    <span className="quota">
      <span className="bar" role="meter" aria-label={`${k.remaining_quota} of ${limit} credits left`} aria-valuemin={0} aria-valuemax={limit} aria-valuenow={k.remaining_quota}>
        <span style={{ width: `${pct}%` }} />
      </span>
      {k.remaining_quota} / {limit}
    </span>
  );
}

/** The account filter a link may carry (#/keys?account=3). */
function accountFromHash(): string {
  return new URLSearchParams(window.location.hash.split('?')[1] ?? '').get('account') ?? '';
}

export function KeysPage() {
  const [status, setStatus] = useState('');
  const [account, setAccount] = useState(accountFromHash);
  const [accounts, setAccounts] = useState<AccountList['items']>([]);
  const [assignTo, setAssignTo] = useState('');
  const [q, setQ] = useState('');
  const [sort, setSort] = useState('created_at');
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const [page, setPage] = useState<{ items: Key[]; next_cursor: string | null; total: number } | null>(null);
  const [selected, setSelected] = useState<Set<number>>(new Set());
  const [error, setError] = useState<string | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const cursor = cursors[cursors.length - 1] ?? null;

  const load = useCallback(async () => {
    const params = new URLSearchParams({ limit: String(PAGE), sort, order: 'desc' });
    if (status) params.set('status', status);
    if (account) params.set('account_id', account);
    if (q.trim()) params.set('q', q.trim());
    if (cursor) params.set('cursor', cursor);
    try {
      const [keys, accts] = await Promise.all([api<NonNullable<typeof page>>(`/tavily-keys?${params}`), api<AccountList>('/accounts?limit=1000')]);
      setPage(keys);
      setAccounts(accts.items);
      setError(null);
    } catch (e) {
      setError((e as Error).message);
    }
  }, [status, account, q, sort, cursor]);

  useEffect(() => {
    void load();
  }, [load]);

  const restart = () => {
    setCursors([null]);
    setSelected(new Set());
  };

  const act = async (what: string, run: () => Promise<unknown>) => {
    try {
      await run();
      setMessage(what);
      await load();
    } catch (e) {
      setError((e as Error).message);
    }
  };

  const bulk = (action: 'enable' | 'disable' | 'delete') => {
    // A cancelled confirm does nothing and says nothing.
    if (action === 'delete' && !window.confirm(`Delete ${selected.size} keys?`)) return;
    void act(`${action}d ${selected.size} keys`, async () => {
      await api('/tavily-keys/bulk', { json: { action, ids: [...selected] } });
      setSelected(new Set());
    });
  };

  const assign = (name: string | null) =>
    act(name === null ? `took ${selected.size} keys out of their account` : `put ${selected.size} keys in ${name}`, async () => {
      await api('/tavily-keys/bulk', { json: name === null ? { action: 'assign', ids: [...selected], account_id: null } : { action: 'assign', ids: [...selected], account: name } });
      setSelected(new Set());
      setAssignTo('');
    });

  const toggle = (id: number) =>
    setSelected((s) => {
      const n = new Set(s);
      if (n.has(id)) n.delete(id);
      else n.add(id);
      return n;
    });

  return (
    <section aria-labelledby="keys-title">
      <h1 id="keys-title">Tavily keys</h1>
      <ImportPanel onImported={() => { restart(); void load(); }} />
      <RefreshPanel selected={[...selected]} onDone={load} />
      <SuggestionsPanel onConfirmed={load} />

      <div className="toolbar" role="search">
        <label>
          Status
          <select value={status} onChange={(e) => { setStatus(e.target.value); restart(); }}>
            <option value="">all</option>
            {STATUSES.map((s) => <option key={s} value={s}>{s}</option>)}
          </select>
        </label>
        <label>
          Account
          <select aria-label="Account" value={account} onChange={(e) => { setAccount(e.target.value); restart(); }}>
            <option value="">all</option>
            <option value="0">in no account</option>
            {accounts.map((a) => <option key={a.id} value={String(a.id)}>{a.name}</option>)}
          </select>
        </label>
        <label>
          Search
          <input type="search" value={q} placeholder="label or last characters" onChange={(e) => { setQ(e.target.value); restart(); }} />
        </label>
        <label>
          Sort by
          <select value={sort} onChange={(e) => { setSort(e.target.value); restart(); }}>
            <option value="created_at">newest</option>
            <option value="remaining_quota">most remaining</option>
          </select>
        </label>
      </div>

      <div className="toolbar">
        <span aria-live="polite">{selected.size} selected</span>
        <button type="button" disabled={selected.size === 0} onClick={() => bulk('enable')}>Enable selected</button>
        <button type="button" disabled={selected.size === 0} onClick={() => bulk('disable')}>Disable selected</button>
        <button type="button" className="danger" disabled={selected.size === 0} onClick={() => bulk('delete')}>Delete selected</button>
        <label>
          Account for selected
          <input list="account-names" value={assignTo} placeholder="a name, new or existing" onChange={(e) => setAssignTo(e.target.value)} />
        </label>
        <datalist id="account-names">{accounts.map((a) => <option key={a.id} value={a.name} />)}</datalist>
        <button type="button" disabled={selected.size === 0 || assignTo.trim() === ''} onClick={() => assign(assignTo.trim())}>Put selected in account</button>
        <button type="button" className="secondary" disabled={selected.size === 0} onClick={() => assign(null)}>Take selected out of their account</button>
      </div>
      {message && <p role="status">Done: {message}.</p>}
      <ErrorAlert message={error} />

      {!page ? (
        <p aria-busy="true">Loading…</p>
      ) : page.items.length === 0 ? (
        <p>No keys{status || q ? ' match' : ' yet: import some above'}.</p>
      ) : (
        <DataTable label="Keys" columns={[
            <input key="all" type="checkbox" aria-label="Select all on this page" checked={page.items.every((k) => selected.has(k.id))} onChange={(e) => setSelected(e.target.checked ? new Set(page.items.map((k) => k.id)) : new Set())} />,
            'Key', 'Label', 'Account', 'Status', 'Remaining', 'Plan', 'Last refresh', 'Last error', 'Actions',
          ]}>
              {page.items.map((k) => (
                <tr key={k.id}>
                  <td><input type="checkbox" aria-label={`Select ${k.key_masked}`} checked={selected.has(k.id)} onChange={() => toggle(k.id)} /></td>
                  <td className="mono">{k.key_masked}</td>
                  <td>{k.label}</td>
                  <td>{k.account_name ?? <span className="muted">–</span>}</td>
                  <td>
                    <span className={`badge ${k.status}`}>{k.status}</span>
                    {k.drift && <small className="error" title="usage nobody here spent: the key is used elsewhere"> used elsewhere: {driftText(k.drift)}</small>}
                    {k.cooldown_until && <small title={k.cooldown_reason ?? 'the gateway rests this key until then'}> resting until {new Date(k.cooldown_until).toLocaleTimeString()}{k.cooldown_reason ? `: ${k.cooldown_reason}` : ''}</small>}
                  </td>
                  <td><QuotaBar k={k} /></td>
                  <td>{k.plan}</td>
                  <td>{k.last_refreshed_at ? new Date(k.last_refreshed_at).toLocaleString() : '–'}</td>
                  <td className="error-cell">{k.last_error}</td>
                  <td className="actions">
                    <button type="button" className="secondary" aria-label={`${k.status === 'disabled' ? 'Enable' : 'Disable'} ${k.key_masked}`} onClick={() => act(`${k.status === 'disabled' ? 'enabled' : 'disabled'} ${k.key_masked}`, () => api(`/tavily-keys/${k.id}`, { method: 'PATCH', json: { enabled: k.status === 'disabled' } }))}>
                      {k.status === 'disabled' ? 'Enable' : 'Disable'}
                    </button>
                    <button type="button" className="danger" aria-label={`Delete ${k.key_masked}`} onClick={() => window.confirm(`Delete ${k.key_masked}?`) && act(`deleted ${k.key_masked}`, () => api(`/tavily-keys/${k.id}`, { method: 'DELETE' }))}>
                      Delete
                    </button>
                  </td>
                </tr>
              ))}
        </DataTable>
      )}
      {page && (
        <nav className="pager" aria-label="Pages">
          <button type="button" disabled={cursors.length === 1} onClick={() => setCursors((c) => c.slice(0, -1))}>Previous</button>
          <span>
            {page.total} keys · page {cursors.length} of {Math.max(1, Math.ceil(page.total / PAGE))}
          </span>
          <button type="button" disabled={!page.next_cursor} onClick={() => setCursors((c) => [...c, page.next_cursor])}>Next</button>
        </nav>
      )}
    </section>
  );
}

function ImportPanel({ onImported }: { onImported: () => void }) {
  const [text, setText] = useState('');
  const [validate, setValidate] = useState(true);
  const [account, setAccount] = useState('');
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<ImportResult | null>(null);
  const [error, setError] = useState<string | null>(null);

  const onFile = async (e: ChangeEvent<HTMLInputElement>) => {
    const f = e.target.files?.[0];
    if (f) setText(await f.text());
  };
  const submit = async () => {
    setBusy(true);
    setError(null);
    try {
      const params = new URLSearchParams({ validate: String(validate) });
      if (account.trim()) params.set('account', account.trim());
      setResult(await api<ImportResult>(`/tavily-keys?${params}`, { text }));
      setText('');
      onImported();
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  };

  return (
    <details className="panel" open>
      <summary>Add keys</summary>
      <label htmlFor="import-text">Keys to import (any text: every tvly-… token is taken)</label>
      <textarea id="import-text" rows={4} value={text} onChange={(e) => setText(e.target.value)} />
      <div className="toolbar">
        <label>
          Upload .txt or .csv <input type="file" accept=".txt,.csv,text/plain,text/csv" onChange={onFile} />
        </label>
        <label>
          <input type="checkbox" checked={validate} onChange={(e) => setValidate(e.target.checked)} /> Check each new key with Tavily
        </label>
        <label title="keys of one Tavily account share its credits; lines like “email =&gt; key” name their own account">
          Account (optional) <input value={account} placeholder="e.g. team@example.com" onChange={(e) => setAccount(e.target.value)} />
        </label>
        <button type="button" disabled={busy || text.trim() === ''} onClick={submit}>{busy ? 'Importing…' : 'Import'}</button>
      </div>
      <ErrorAlert message={error} />
      {result && (
        <div role="status" aria-label="Import result">
          <p>Added {result.added}, duplicates {result.duplicates}, rejected {result.rejected_count}.{result.accounts > 0 ? ` In ${result.accounts} account${result.accounts === 1 ? '' : 's'}.` : ''}</p>
          {result.rejected.length > 0 && (
            <ul>{result.rejected.map((r, i) => <li key={i}><code>{r.input}</code>: {r.reason}</li>)}</ul>
          )}
        </div>
      )}
    </details>
  );
}

function RefreshPanel({ selected, onDone }: { selected: number[]; onDone: () => Promise<void> }) {
  const [status, setStatus] = useState<RefreshStatus['progress'] | null>(null);
  const [result, setResult] = useState<RefreshResult | null>(null);
  const [error, setError] = useState<string | null>(null);
  const timer = useRef<number | undefined>(undefined);

  useEffect(() => () => window.clearInterval(timer.current), []);

  const start = async (ids?: number[]) => {
    setError(null);
    setResult(null);
    // Follow the run's progress while the request is under way.
    timer.current = window.setInterval(() => {
      api<RefreshStatus>('/tavily-keys/refresh-quota').then((s) => setStatus(s.progress), () => undefined);
    }, 250);
    try {
      const r = await api<RefreshResult>('/tavily-keys/refresh-quota', { json: ids ? { ids } : {} });
      setResult(r);
      setStatus({ running: false, total: r.total, done: r.total, failed: r.failed_count, started_at: null });
      await onDone();
    } catch (e) {
      setError((e as Error).message);
    } finally {
      window.clearInterval(timer.current);
    }
  };

  const running = status?.running ?? false;
  return (
    <div className="panel">
      <div className="toolbar">
        <button type="button" disabled={running} onClick={() => start()}>Refresh quota</button>
        <button type="button" disabled={running || selected.length === 0} onClick={() => start(selected)}>Refresh selected</button>
        {status && (
          <label className="progress">
            Refresh progress
            <progress max={Math.max(1, status.total)} value={status.done} aria-valuetext={`${status.done} of ${status.total} keys`} />
            {status.done} / {status.total}
          </label>
        )}
      </div>
      <ErrorAlert message={error} />
      {result && (
        <div role="status" aria-label="Refresh result">
          <p>
            Refreshed {result.success_count} of {result.total} keys in {result.duration_ms} ms; {result.failed_count} failed.
          </p>
          {result.failures.length > 0 && (
            <ul>{result.failures.map((f) => <li key={f.id}><code>{f.key_masked}</code>: {f.error}</li>)}</ul>
          )}
        </div>
      )}
    </div>
  );
}

/** Keys whose account figures are identical: probably one account, for the admin to confirm. */
function SuggestionsPanel({ onConfirmed }: { onConfirmed: () => Promise<void> }) {
  const [items, setItems] = useState<Suggestion[] | null>(null);
  const [names, setNames] = useState<Record<string, string>>({});
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);

  const load = useCallback(async () => {
    try {
      setItems((await api<{ items: Suggestion[] }>('/accounts/suggestions')).items);
    } catch (e) {
      setError((e as Error).message);
    }
  }, []);
  useEffect(() => {
    void load();
  }, [load]);

  if (!items || items.length === 0) return done ? <p role="status">Done: {done}.</p> : null;
  const id = (s: Suggestion) => s.key_ids.join(',');
  const confirm = async (s: Suggestion) => {
    setError(null);
    try {
      if (s.account_id !== null) {
        await api(`/accounts/${s.account_id}/keys`, { json: { ids: s.key_ids } });
        setDone(`added ${s.key_ids.length} keys to ${s.account_name}`);
      } else {
        const name = (names[id(s)] ?? '').trim() || `${s.plan} account of ${s.keys[0]!.key_masked}`;
        await api('/accounts', { json: { name, key_ids: s.key_ids } });
        setDone(`made the account ${name} of ${s.key_ids.length} keys`);
      }
      await load();
      await onConfirmed();
    } catch (e) {
      setError((e as Error).message);
    }
  };
  return (
    <section className="panel" aria-labelledby="suggestions-title">
      <h2 id="suggestions-title">Probably one account</h2>
      <p className="muted">
        These keys reported identical account figures in the same refresh. Keys of one Tavily account share its credits: confirm, and the
        pool counts them once.
      </p>
      <ErrorAlert message={error} />
      {done && <p role="status">Done: {done}.</p>}
      <ul className="suggestions">
        {items.map((s) => (
          <li key={id(s)} aria-label={`Suggestion: ${s.keys.map((k) => k.key_masked).join(', ')}`}>
            <p>
              {s.keys.map((k) => <code key={k.id}>{k.key_masked}</code>).reduce<ReactNode[]>((a, c, i) => (i ? [...a, ', ', c] : [c]), [])}: plan {s.plan},{' '}
              {s.plan_usage} of {s.plan_limit ?? '–'} credits used, read {new Date(s.read_at).toLocaleString()}
            </p>
            {s.account_id === null ? (
              <label>
                Name <input value={names[id(s)] ?? ''} placeholder={`${s.plan} account of ${s.keys[0]!.key_masked}`} onChange={(e) => setNames((n) => ({ ...n, [id(s)]: e.target.value }))} />
              </label>
            ) : (
              <span>into {s.account_name} </span>
            )}
            <button type="button" onClick={() => void confirm(s)}>Confirm as one account</button>
          </li>
        ))}
      </ul>
    </section>
  );
}

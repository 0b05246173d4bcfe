import { useCallback, useEffect, useState } from 'react';
import { ENDPOINT_NAMES } from '../../../src/gateway/endpoint-names';
import { type LogRow, api } from '../api';
import { DataTable, ErrorAlert } from '../components';


// The server's own list (a value import of a module with no dependencies).
const ENDPOINTS = ENDPOINT_NAMES;

/** `datetime-local` value (local time) → ISO instant; '' → undefined. */
const toIso = (local: string) => (local ? new Date(local).toISOString() : undefined);

/** Filters a link may set: `#/logs?token_id=3&status=403`. */
function hashParams(): URLSearchParams {
  return new URLSearchParams(window.location.hash.split('?')[1] ?? '');
}

export function LogsPage() {
  const initial = hashParams();
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');
  const [tokenId, setTokenId] = useState(initial.get('token_id') ?? '');
  const [keyId, setKeyId] = useState(initial.get('key_id') ?? '');
  const [endpoint, setEndpoint] = useState(initial.get('endpoint') ?? '');
  const [status, setStatus] = useState(initial.get('status') ?? '');
  const [tokens, setTokens] = useState<{ id: number; name: string }[]>([]);
  const [rows, setRows] = useState<LogRow[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    api<{ items: { id: number; name: string }[] }>('/tokens?include_revoked=true').then((r) => setTokens(r.items), () => undefined);
  }, []);

  const query = useCallback(
    (cursor?: string) => {
      const p = new URLSearchParams({ limit: '100' });
      const f = toIso(from);
      const t = toIso(to);
      if (f) p.set('from', f);
      if (t) p.set('to', t);
      if (tokenId) p.set('token_id', tokenId);
      if (keyId.trim()) p.set('key_id', keyId.trim());
      if (endpoint) p.set('endpoint', endpoint);
      if (status.trim()) p.set('status', status.trim());
      if (cursor) p.set('cursor', cursor);
      return api<{ items: LogRow[]; next_cursor: string | null }>(`/logs?${p}`);
    },
    [from, to, tokenId, keyId, endpoint, status],
  );

  useEffect(() => {
    query().then(
      (r) => {
        setRows(r.items);
        setNext(r.next_cursor);
        setError(null);
      },
      (e: Error) => setError(e.message),
    );
  }, [query]);

  const more = async () => {
    if (!next) return;
    const r = await query(next);
    setRows((cur) => [...(cur ?? []), ...r.items]);
    setNext(r.next_cursor);
  };
  const tokenName = (id: number | null) => (id === null ? '–' : (tokens.find((t) => t.id === id)?.name ?? `#${id}`));

  return (
    <section aria-labelledby="logs-title">
      <h1 id="logs-title">Request log</h1>
      <div className="toolbar" role="search">
        <label>From <input type="datetime-local" value={from} onChange={(e) => setFrom(e.target.value)} /></label>
        <label>To <input type="datetime-local" value={to} onChange={(e) => setTo(e.target.value)} /></label>
        <label>
          Token
          <select value={tokenId} onChange={(e) => setTokenId(e.target.value)}>
            <option value="">all</option>
            {tokens.map((t) => <option key={t.id} value={t.id}>{t.name}</option>)}
          </select>
        </label>
        <label>Key id <input type="number" min={1} value={keyId} onChange={(e) => setKeyId(e.target.value)} style={{ width: '6rem' }} /></label>
        <label>
          Endpoint
          <select value={endpoint} onChange={(e) => setEndpoint(e.target.value)}>
            <option value="">all</option>
            {ENDPOINTS.map((e) => <option key={e} value={e}>{e}</option>)}
          </select>
        </label>
        <label>Status <input type="number" min={100} max={599} value={status} onChange={(e) => setStatus(e.target.value)} style={{ width: '5rem' }} /></label>
      </div>
      <ErrorAlert message={error} />
      {!rows ? (
        <p aria-busy="true">Loading…</p>
      ) : rows.length === 0 ? (
        <p>No requests{from || to || tokenId || keyId || endpoint || status ? ' match these filters' : ' yet'}.</p>
      ) : (
        <DataTable label="Requests" columns={['Time', 'Token', 'Key', 'Endpoint', 'Status', 'Attempts', 'Latency', 'Credits', 'Request id', 'Error']}>
              {rows.map((r) => (
                <tr key={r.id}>
                  <td>{new Date(r.ts).toLocaleString()}</td>
                  <td>{tokenName(r.token_id)}</td>
                  <td>{r.key_id ?? '–'}</td>
                  <td>{r.endpoint}</td>
                  <td>
                    {r.status}
                    {r.requests > 1 && <span className="muted" title={`${r.requests} refusals counted together`}> ×{r.requests}</span>}
                  </td>
                  <td>{r.attempts}</td>
                  <td>{r.latency_ms === null ? '–' : `${r.latency_ms} ms`}</td>
                  <td>{r.credits}</td>
                  <td className="mono">{r.request_id ?? '–'}</td>
                  <td className="error-cell">{r.error}</td>
                </tr>
              ))}
        </DataTable>
      )}
      {next && <button type="button" className="secondary" onClick={more}>Load more</button>}
    </section>
  );
}

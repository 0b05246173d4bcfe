import { useCallback, useEffect, useState } from 'react';
import { type AuditView, api } from '../api';
import { DataTable, ErrorAlert } from '../components';

const FAMILIES = [
  ['', 'everything'],
  ['keys', 'keys'],
  ['accounts', 'accounts'],
  ['tokens', 'tokens'],
  ['alerts', 'alerts'],
  ['admin', 'refused admin sign-ins'],
  ['gateway', 'unknown client tokens'],
] as const;

/** What a row's targets say, in a line: `id 12, fields label`. */
function targetsText(t: AuditView['targets']): string {
  if (!t) return '';
  return Object.entries(t)
    .map(([k, v]) => `${k} ${Array.isArray(v) ? (v.length > 5 ? `${v.slice(0, 5).join(', ')} … (${v.length})` : v.join(', ')) : typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v)}`)
    .join('; ');
}

/** Who changed what, newest first. */
export function AuditPage() {
  const [family, setFamily] = useState('');
  const [rows, setRows] = useState<AuditView[] | null>(null);
  const [next, setNext] = useState<number | null>(null);
  const [error, setError] = useState<string | null>(null);

  const query = useCallback(
    (before?: number) => {
      const p = new URLSearchParams({ limit: '100' });
      if (family) p.set('action', family);
      if (before) p.set('before', String(before));
      return api<{ items: AuditView[]; next: number | null }>(`/audit?${p}`);
    },
    [family],
  );
  useEffect(() => {
    query().then(
      (r) => {
        setRows(r.items);
        setNext(r.next);
        setError(null);
      },
      (e: Error) => setError(e.message),
    );
  }, [query]);

  const more = async () => {
    if (!next) return;
    try {
      const r = await query(next);
      setRows((cur) => [...(cur ?? []), ...r.items]);
      setNext(r.next);
    } catch (e) {
      setError((e as Error).message);
    }
  };

  return (
    <section aria-labelledby="audit-title">
      <h1 id="audit-title">Audit log</h1>
      <div className="panel toolbar">
        <label>
          Show{' '}
          <select value={family} onChange={(e) => setFamily(e.target.value)}>
            {FAMILIES.map(([v, label]) => (
              <option key={v} value={v}>
                {label}
              </option>
            ))}
          </select>
        </label>
      </div>
      <ErrorAlert message={error} />
      {!rows ? (
        <p aria-busy="true">Loading…</p>
      ) : rows.length === 0 ? (
        <p>Nothing recorded yet.</p>
      ) : (
        <>
          <DataTable label="Audit log" columns={['Time', 'Action', 'Targets', 'Outcome', 'From', 'User agent']}>
            {rows.map((r) => (
              <tr key={r.id}>
                <td>{new Date(r.at).toLocaleString()}</td>
                <td className="mono">{r.action}</td>
                <td>{targetsText(r.targets)}</td>
                <td>{r.outcome}</td>
                <td className="mono">{r.remote_addr ?? ''}</td>
                <td>{r.user_agent ?? ''}</td>
              </tr>
            ))}
          </DataTable>
          {next && (
            <button type="button" className="secondary" onClick={more}>
              Older
            </button>
          )}
        </>
      )}
    </section>
  );
}

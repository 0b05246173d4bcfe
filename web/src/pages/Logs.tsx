import { useInfiniteQuery, useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { ENDPOINT_NAMES, STATUS_CLASSES } from '../../../src/schemas/endpoint-names';
import type { LogRow } from '../api';
import { DataTable, ErrorAlert, When } from '../components';
import { useFormat } from '../i18n';
import { Q } from '../query';

/** `datetime-local` value (local time) → ISO instant; '' → undefined. */
const toIso = (local: string) => (local ? new Date(local).toISOString() : undefined);

/** Filters a link may set: `#/logs?token_id=3&status=403`. */
function hashParams(): URLSearchParams {
  return new URLSearchParams(window.location.hash.split('?')[1] ?? '');
}

/** A key as the log shows it: masked, with its label, linked to its page. */
function KeyCell({ id, masked, label }: { id: number | null; masked: string | null; label?: string | null }) {
  const { t } = useTranslation();
  if (id === null) return <span className="muted">–</span>;
  return (
    <a href={`#/keys/${id}`}>
      <span className="mono" translate="no">{masked ?? t('logs.deletedKey', { id })}</span>
      {label ? <small> · {label}</small> : null}
    </a>
  );
}

/** Request log rows: each attempt of a failed-over request with its key and answer. */
export function LogTable({ rows, label }: { rows: LogRow[]; label: string }) {
  const { t } = useTranslation();
  const f = useFormat();
  return (
    <DataTable label={label} columns={[t('logs.time'), t('logs.token'), t('logs.key'), t('logs.endpoint'), t('logs.status'), t('logs.attempts'), t('logs.latency'), t('logs.credits'), t('logs.error'), t('logs.requestId')]}>
      {rows.map((r) => (
        <tr key={r.id} className={r.status >= 400 ? 'failed-row' : undefined}>
          <td><When at={r.ts} /></td>
          <td>{r.token_name ?? (r.token_id === null ? '–' : `#${r.token_id}`)}</td>
          <td><KeyCell id={r.key_id} masked={r.key_masked} label={r.key_label} /></td>
          <td className="mono" translate="no">{r.endpoint}{r.via === 'mcp' ? ' (MCP)' : ''}</td>
          <td>
            <span className={`status s${String(r.status)[0]}`}>{r.status}</span>
            {r.requests > 1 && <span className="muted" title={t('logs.aggregated', { count: r.requests })}> ×{r.requests}</span>}
          </td>
          <td>
            {r.attempts}
            {r.failovers.length > 0 && (
              <details className="failovers">
                <summary>{t('logs.failedOver', { count: r.failovers.length })}</summary>
                <ol>
                  {r.failovers.map((x, i) => (
                    <li key={i}>
                      <KeyCell id={x.key_id} masked={x.key_masked} />: {x.status ?? t('logs.noAnswer')} <span lang="en">{x.error}</span>
                    </li>
                  ))}
                </ol>
              </details>
            )}
          </td>
          <td>{r.latency_ms === null ? '–' : t('logs.ms', { ms: f.num(r.latency_ms) })}</td>
          <td>
            {f.num(r.credits)}
            {(r.cache === 'hit' || r.cache === 'joined') && <small className="muted"> {t(`logs.cache.${r.cache}`, { n: f.num(r.credits_saved) })}</small>}
          </td>
          <td className="error-cell" lang="en">{r.error}</td>
          <td className="mono" translate="no">{r.request_id ?? '–'}</td>
        </tr>
      ))}
    </DataTable>
  );
}

export function LogsPage() {
  const { t } = useTranslation();
  const initial = hashParams();
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');
  const [tokenId, setTokenId] = useState(initial.get('token_id') ?? '');
  const [keyId, setKeyId] = useState(initial.get('key_id') ?? '');
  const [endpoint, setEndpoint] = useState(initial.get('endpoint') ?? '');
  const [status, setStatus] = useState(initial.get('status') ?? '');
  const [statusClass, setStatusClass] = useState(initial.get('status_class') ?? '');
  const [live, setLive] = useState(false);
  const tokens = useQuery(Q.tokens(true));

  const filters = { limit: 100, from: toIso(from), to: toIso(to), token_id: tokenId, key_id: keyId.trim(), endpoint, status: status.trim(), status_class: statusClass };
  // Live: the first page again every 2 seconds (only the newest rows change).
  const pages = useInfiniteQuery({ ...Q.logPages(filters), refetchInterval: live ? 2000 : false });
  const rows = pages.data?.pages.flatMap((p) => p.items);
  const filtered = Boolean(from || to || tokenId || keyId || endpoint || status || statusClass);

  return (
    <section aria-labelledby="logs-title">
      <h1 id="logs-title">{t('logs.title')}</h1>
      <div className="toolbar" role="search">
        <label>{t('logs.from')} <input type="datetime-local" value={from} onChange={(e) => setFrom(e.target.value)} /></label>
        <label>{t('logs.to')} <input type="datetime-local" value={to} onChange={(e) => setTo(e.target.value)} /></label>
        <label>
          {t('logs.token')}
          <select value={tokenId} onChange={(e) => setTokenId(e.target.value)}>
            <option value="">{t('common.all')}</option>
            {(tokens.data?.items ?? []).map((x) => <option key={x.id} value={x.id}>{x.name}</option>)}
          </select>
        </label>
        <label>{t('logs.keyId')} <input type="number" min={1} value={keyId} onChange={(e) => setKeyId(e.target.value)} className="narrow" /></label>
        <label>
          {t('logs.endpoint')}
          <select value={endpoint} onChange={(e) => setEndpoint(e.target.value)}>
            <option value="">{t('common.all')}</option>
            {ENDPOINT_NAMES.map((e) => <option key={e} value={e} translate="no">{e}</option>)}
          </select>
        </label>
        <label>
          {t('logs.outcome')}
          <select value={statusClass} onChange={(e) => setStatusClass(e.target.value)}>
            <option value="">{t('common.all')}</option>
            {STATUS_CLASSES.map((c) => <option key={c} value={c}>{t(`logs.classes.${c}`)}</option>)}
          </select>
        </label>
        <label>
          <input type="checkbox" checked={statusClass === 'errors'} onChange={(e) => setStatusClass(e.target.checked ? 'errors' : '')} /> {t('logs.errorsOnly')}
        </label>
        <label>{t('logs.exactStatus')} <input type="number" min={100} max={599} value={status} onChange={(e) => setStatus(e.target.value)} className="narrow" /></label>
        <label>
          <input type="checkbox" checked={live} onChange={(e) => setLive(e.target.checked)} /> {t('logs.live')}
        </label>
      </div>
      {live && <p className="muted" aria-live="polite">{t('logs.following')}</p>}
      <ErrorAlert message={pages.error?.message} />
      {!rows ? (
        !pages.error && <p aria-busy="true">{t('common.loading')}</p>
      ) : rows.length === 0 ? (
        <p>{filtered ? t('logs.noMatch') : t('logs.none')}</p>
      ) : (
        <LogTable rows={rows} label={t('logs.table')} />
      )}
      {pages.hasNextPage && (
        <button type="button" className="secondary" disabled={pages.isFetchingNextPage} onClick={() => void pages.fetchNextPage()}>
          {t('common.loadMore')}
        </button>
      )}
    </section>
  );
}

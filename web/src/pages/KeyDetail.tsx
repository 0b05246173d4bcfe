import { useQuery } from '@tanstack/react-query';
import { type ReactNode, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { type KeyDetail, type KeyPatch, api } from '../api';
import { DataTable, Outcome, Pending, When } from '../components';
import { useFormat } from '../i18n';
import { Q, useAction } from '../query';
import { LabelEditor, QuotaBar, RefreshPanel, StatusCell } from './Keys';
import { LogTable } from './Logs';

/** One key: its figures, per-endpoint usage, recent requests, last errors and rests, its account. */
export function KeyDetailPage({ id }: { id: number }) {
  const { t } = useTranslation();
  const key = useQuery(Q.key(id));
  const recent = useQuery(Q.logs({ key_id: id, limit: 20 }));
  // Its failures: its own error answers, and the requests that failed over from it (30 days).
  const [since] = useState(() => new Date(Math.floor(Date.now() / 3600_000) * 3600_000 - 30 * 24 * 3600_000).toISOString());
  const errors = useQuery(Q.logs({ failed_key_id: id, from: since, limit: 10 }));
  const { act, done, error } = useAction();
  const change = (patch: KeyPatch, what: string) => act(async () => (await api(`/tavily-keys/${id}`, { method: 'PATCH', json: patch }), what));
  return (
    <section aria-labelledby="key-title">
      <p>
        <a href="#/keys">← {t('keyDetail.back')}</a>
      </p>
      <Pending q={key}>
        {(k) => (
          <>
            <h1 id="key-title">
              <span translate="no">{k.key_masked}</span> {k.label && <span className="muted">· {k.label}</span>}
            </h1>
            <div className="toolbar">
              <LabelEditor k={k} />
              <button type="button" className="secondary" onClick={() => change({ enabled: k.status === 'disabled' }, t(k.status === 'disabled' ? 'keys.enabledOne' : 'keys.disabledOne', { key: k.key_masked }))}>
                {k.status === 'disabled' ? t('common.enable') : t('common.disable')}
              </button>
              {k.drift && (
                <button type="button" className="secondary" onClick={() => change({ drift: null }, t('keyDetail.dismissed'))}>
                  {t('keyDetail.dismiss')}
                </button>
              )}
              <button
                type="button"
                className="danger"
                onClick={() => window.confirm(t('keys.confirmDelete', { key: k.key_masked })) && act(async () => (await api(`/tavily-keys/${id}`, { method: 'DELETE' }), null), () => { window.location.hash = '#/keys'; })}
              >
                {t('common.delete')}
              </button>
            </div>
            <Outcome done={done} error={error} />
            <RefreshPanel selected={[k.id]} only />
            <Figures k={k} />
            <Usage k={k} />
          </>
        )}
      </Pending>
      <h2>{t('keyDetail.errors')}</h2>
      <Pending q={errors}>{(l) => (l.items.length === 0 ? <p className="muted">{t('keyDetail.noErrors')}</p> : <LogTable rows={l.items} label={t('keyDetail.errors')} />)}</Pending>
      <h2>{t('keyDetail.recent')}</h2>
      <Pending q={recent}>
        {(l) => (
          <>
            {l.items.length === 0 ? <p className="muted">{t('keyDetail.noRequests')}</p> : <LogTable rows={l.items} label={t('keyDetail.recent')} />}
            <p>
              <a href={`#/logs?key_id=${id}`}>{t('keyDetail.allRequests')}</a>
            </p>
          </>
        )}
      </Pending>
    </section>
  );
}

function Figures({ k }: { k: KeyDetail }) {
  const { t } = useTranslation();
  const f = useFormat();
  const n = (v: number | null) => (v === null ? '–' : f.num(v));
  const rows: [string, ReactNode][] = [
    [t('keys.status'), <StatusCell k={k} />],
    [t('keys.remaining'), <QuotaBar k={k} />],
    [t('keyDetail.keyUsage'), `${n(k.key_usage)} / ${n(k.key_limit)}`],
    [t('keys.plan'), k.plan ? `${k.plan} · ${n(k.plan_usage)} / ${n(k.plan_limit)}` : '–'],
    [t('keyDetail.paygo'), `${n(k.paygo_usage)} / ${n(k.paygo_limit)}`],
    [t('keys.account'), k.account_id === null ? t('keyDetail.ownAccount') : <a href={`#/keys?account=${k.account_id}`}>{k.account_name}</a>],
    [t('keys.lastCheck'), <When at={k.last_checked_at} />],
    [t('keyDetail.lastRead'), <When at={k.last_refreshed_at} />],
    [t('keys.lastError'), k.last_error ? <span className="error-cell" lang="en">{k.last_error}</span> : '–'],
    [t('keyDetail.lastUsed'), <When at={k.last_used_at} />],
    [t('keyDetail.cycle'), <When at={k.cycle_started_at} empty={t('keyDetail.noCycle')} />],
    [t('keyDetail.added'), <When at={k.created_at} />],
  ];
  return (
    <dl className="figures" aria-label={t('keyDetail.figures')}>
      {rows.map(([label, value]) => (
        <div key={label}>
          <dt>{label}</dt>
          <dd>{value}</dd>
        </div>
      ))}
    </dl>
  );
}

/** Per-endpoint usage as Tavily's /usage reported it at the last check. */
function Usage({ k }: { k: KeyDetail }) {
  const { t } = useTranslation();
  const f = useFormat();
  const u = k.endpoint_usage;
  const names = u ? [...new Set([...Object.keys(u.key), ...Object.keys(u.account)])].sort() : [];
  if (!u || names.length === 0) return <p className="muted">{t('keyDetail.noUsage')}</p>;
  return (
    <>
      <h2>{t('keyDetail.usage')}</h2>
      <DataTable label={t('keyDetail.usage')} columns={[t('keyDetail.endpoint'), t('keyDetail.thisKey'), t('keyDetail.itsAccount')]}>
        {names.map((name) => (
          <tr key={name}>
            <td className="mono" translate="no">{name.replace(/_usage$/, '')}</td>
            <td>{f.num(u.key[name] ?? 0)}</td>
            <td>{f.num(u.account[name] ?? 0)}</td>
          </tr>
        ))}
      </DataTable>
    </>
  );
}

import { useInfiniteQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import type { AuditRow } from '../api';
import { DataTable, ErrorAlert, When } from '../components';
import { Q } from '../query';

const FAMILIES = ['', 'keys', 'accounts', 'tokens', 'alerts', 'admin', 'gateway'] as const;

/** What a row's targets say, in a line: `id 12, fields label`. */
function targetsText(t: AuditRow['targets']): string {
  if (!t) return '';
  return Object.entries(t)
    .map(([k, v]) => `${k} ${Array.isArray(v) ? (v.length > 5 ? `${v.slice(0, 5).join(', ')} … (${v.length})` : v.join(', ')) : typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v)}`)
    .join('; ');
}

/** Who changed what, newest first. */
export function AuditPage() {
  const { t } = useTranslation();
  const [family, setFamily] = useState('');
  const pages = useInfiniteQuery(Q.auditPages({ limit: 100, action: family }));
  const rows = pages.data?.pages.flatMap((p) => p.items);
  return (
    <section aria-labelledby="audit-title">
      <h1 id="audit-title">{t('audit.title')}</h1>
      <div className="panel toolbar">
        <label>
          {t('audit.show')}{' '}
          <select value={family} onChange={(e) => setFamily(e.target.value)}>
            {FAMILIES.map((v) => (
              <option key={v} value={v}>
                {t(`audit.families.${v || 'all'}`)}
              </option>
            ))}
          </select>
        </label>
      </div>
      <ErrorAlert message={pages.error?.message} />
      {!rows ? (
        !pages.error && <p aria-busy="true">{t('common.loading')}</p>
      ) : rows.length === 0 ? (
        <p>{t('audit.none')}</p>
      ) : (
        <DataTable label={t('audit.table')} columns={[t('logs.time'), t('audit.action'), t('audit.targets'), t('audit.outcome'), t('audit.from'), t('audit.agent')]}>
          {rows.map((r) => (
            <tr key={r.id}>
              <td><When at={r.at} /></td>
              <td className="mono" translate="no">{r.action}</td>
              <td translate="no">{targetsText(r.targets)}</td>
              <td>{r.outcome === 'ok' ? t('audit.ok') : r.outcome === 'refused' ? t('audit.refused') : <span lang="en">{r.outcome}</span>}</td>
              <td className="mono" translate="no">{r.remote_addr ?? ''}</td>
              <td translate="no">{r.user_agent ?? ''}</td>
            </tr>
          ))}
        </DataTable>
      )}
      {pages.hasNextPage && (
        <button type="button" className="secondary" disabled={pages.isFetchingNextPage} onClick={() => void pages.fetchNextPage()}>
          {t('audit.older')}
        </button>
      )}
    </section>
  );
}

import { useQuery } from '@tanstack/react-query';
import { type ChangeEvent, type ReactNode, useEffect, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { type BulkChange, type ImportResult, type Key, type KeyPatch, type RefreshResult, type Suggestion, api, qs } from '../api';
import { DataTable, ErrorAlert, Meter, Outcome, Pending, When, toggled } from '../components';
import { useFormat } from '../i18n';
import { Q, useAction, useChange } from '../query';
import { DriftText } from './Accounts';

const PAGE = 50;
export const STATUSES = ['active', 'exhausted', 'invalid', 'disabled'] as const;

export function QuotaBar({ k }: { k: Key }) {
  const { t } = useTranslation();
  if (k.remaining_quota === null) return <span className="muted">{t('common.unknown')}</span>;
  const limit = k.key_limit ?? k.plan_limit ?? k.remaining_quota;
  return <Meter value={k.remaining_quota} max={limit} label={t('keys.creditsLeft', { left: k.remaining_quota, limit })} />;
}

/** The account filter a link may carry (#/keys?account=3). */
function accountFromHash(): string {
  return new URLSearchParams(window.location.hash.split('?')[1] ?? '').get('account') ?? '';
}

/** A key's label, editable in place. */
export function LabelEditor({ k }: { k: Key }) {
  const { t } = useTranslation();
  const [editing, setEditing] = useState(false);
  const [value, setValue] = useState(k.label ?? '');
  const save = useChange((label: string) => api(`/tavily-keys/${k.id}`, { method: 'PATCH', json: { label: label.trim() === '' ? null : label.trim() } satisfies KeyPatch }));
  if (!editing) {
    return (
      <span className="label-cell">
        {k.label ?? <span className="muted">–</span>}{' '}
        <button type="button" className="link" aria-label={t('keys.editLabelOf', { key: k.key_masked })} onClick={() => { setValue(k.label ?? ''); setEditing(true); }}>
          {t('common.edit')}
        </button>
      </span>
    );
  }
  return (
    <form
      className="inline-form"
      onSubmit={(e) => {
        e.preventDefault();
        save.mutate(value, { onSuccess: () => setEditing(false) });
      }}
    >
      <input aria-label={t('keys.labelOf', { key: k.key_masked })} value={value} maxLength={200} autoFocus onChange={(e) => setValue(e.target.value)} onKeyDown={(e) => e.key === 'Escape' && setEditing(false)} />
      <button type="submit" disabled={save.isPending}>{t('common.save')}</button>
      <button type="button" className="secondary" onClick={() => setEditing(false)}>{t('common.cancel')}</button>
      <ErrorAlert message={save.error?.message} />
    </form>
  );
}

export function KeysPage() {
  const { t } = useTranslation();
  const f = useFormat();
  const [status, setStatus] = useState('');
  const [account, setAccount] = useState(accountFromHash);
  const [assignTo, setAssignTo] = useState('');
  const [q, setQ] = useState('');
  const [sort, setSort] = useState('created_at');
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const [selected, setSelected] = useState<Set<number>>(new Set());
  const cursor = cursors[cursors.length - 1] ?? undefined;

  const keys = useQuery({ ...Q.keys({ limit: PAGE, sort, order: 'desc', status, account_id: account, q: q.trim(), cursor: cursor ?? undefined }), placeholderData: (prev) => prev });
  const accounts = useQuery(Q.accounts());
  // Each change says what it did; a bulk change clears the selection.
  const { act: run, done, error } = useAction();
  const act = (what: string, change: () => Promise<unknown>, bulk = false) => run(async () => (await change(), what), bulk ? () => setSelected(new Set()) : undefined);
  const bulkChange = (what: string, body: BulkChange) => act(what, () => api('/tavily-keys/bulk', { json: body }), true);
  const patch = (id: number, body: KeyPatch) => api(`/tavily-keys/${id}`, { method: 'PATCH', json: body });

  const restart = () => {
    setCursors([null]);
    setSelected(new Set());
  };

  const bulk = (action: 'enable' | 'disable' | 'delete') => {
    // A cancelled confirm does nothing and says nothing.
    if (action === 'delete' && !window.confirm(t('keys.confirmBulkDelete', { count: selected.size }))) return;
    bulkChange(t(`keys.bulkDone.${action}`, { count: selected.size }), { action, ids: [...selected] });
  };
  const assign = (name: string | null) =>
    bulkChange(
      name === null ? t('keys.bulkDone.unassign', { count: selected.size }) : t('keys.bulkDone.assign', { count: selected.size, name }),
      name === null ? { action: 'assign', ids: [...selected], account_id: null } : { action: 'assign', ids: [...selected], account: name },
    );

  const accountList = accounts.data?.items ?? [];

  return (
    <section aria-labelledby="keys-title">
      <h1 id="keys-title">{t('keys.title')}</h1>
      <ImportPanel onImported={restart} />
      <RefreshPanel selected={[...selected]} />
      <SuggestionsPanel />

      <div className="toolbar" role="search">
        <label>
          {t('keys.status')}
          <select value={status} onChange={(e) => { setStatus(e.target.value); restart(); }}>
            <option value="">{t('common.all')}</option>
            {STATUSES.map((s) => <option key={s} value={s}>{t(`status.${s}`)}</option>)}
          </select>
        </label>
        <label>
          {t('keys.account')}
          <select aria-label={t('keys.account')} value={account} onChange={(e) => { setAccount(e.target.value); restart(); }}>
            <option value="">{t('common.all')}</option>
            <option value="0">{t('keys.noAccount')}</option>
            {accountList.map((a) => <option key={a.id} value={String(a.id)}>{a.name}</option>)}
          </select>
        </label>
        <label>
          {t('keys.search')}
          <input type="search" value={q} placeholder={t('keys.searchHint')} onChange={(e) => { setQ(e.target.value); restart(); }} />
        </label>
        <label>
          {t('keys.sortBy')}
          <select value={sort} onChange={(e) => { setSort(e.target.value); restart(); }}>
            <option value="created_at">{t('keys.newest')}</option>
            <option value="remaining_quota">{t('keys.mostRemaining')}</option>
          </select>
        </label>
      </div>

      <div className="toolbar">
        <span aria-live="polite">{t('keys.selected', { count: selected.size })}</span>
        <button type="button" disabled={selected.size === 0} onClick={() => bulk('enable')}>{t('keys.enableSelected')}</button>
        <button type="button" disabled={selected.size === 0} onClick={() => bulk('disable')}>{t('keys.disableSelected')}</button>
        <button type="button" className="danger" disabled={selected.size === 0} onClick={() => bulk('delete')}>{t('keys.deleteSelected')}</button>
        <label>
          {t('keys.accountForSelected')}
          <input list="account-names" value={assignTo} placeholder={t('keys.accountHint')} onChange={(e) => setAssignTo(e.target.value)} />
        </label>
        <datalist id="account-names">{accountList.map((a) => <option key={a.id} value={a.name} />)}</datalist>
        <button type="button" disabled={selected.size === 0 || assignTo.trim() === ''} onClick={() => { assign(assignTo.trim()); setAssignTo(''); }}>{t('keys.assign')}</button>
        <button type="button" className="secondary" disabled={selected.size === 0} onClick={() => assign(null)}>{t('keys.unassign')}</button>
      </div>
      <Outcome done={done} error={error} />

      <Pending q={keys}>
        {(page) => (
          <>
            {page.items.length === 0 ? (
              <p>{status || q || account ? t('keys.noMatch') : t('keys.none')}</p>
            ) : (
              <DataTable
                label={t('keys.table')}
                columns={[
                  <input key="all" type="checkbox" aria-label={t('keys.selectPage')} checked={page.items.every((k) => selected.has(k.id))} onChange={(e) => setSelected(e.target.checked ? new Set(page.items.map((k) => k.id)) : new Set())} />,
                  t('keys.key'), t('keys.label'), t('keys.account'), t('keys.status'), t('keys.remaining'), t('keys.plan'), t('keys.lastCheck'), t('keys.lastError'), t('common.actions'),
                ]}
              >
                {page.items.map((k) => (
                  <tr key={k.id}>
                    <td><input type="checkbox" aria-label={t('keys.select', { key: k.key_masked })} checked={selected.has(k.id)} onChange={() => setSelected((s) => toggled(s, k.id))} /></td>
                    <td className="mono" translate="no"><a href={`#/keys/${k.id}`} aria-label={t('keys.detailsOf', { key: k.key_masked })}>{k.key_masked}</a></td>
                    <td><LabelEditor k={k} /></td>
                    <td>{k.account_name ?? <span className="muted">–</span>}</td>
                    <td><StatusCell k={k} /></td>
                    <td><QuotaBar k={k} /></td>
                    <td translate="no">{k.plan}</td>
                    <td><When at={k.last_checked_at} /></td>
                    <td className="error-cell" lang="en">{k.last_error}</td>
                    <td className="actions">
                      <button type="button" className="secondary" aria-label={t(k.status === 'disabled' ? 'keys.enableOne' : 'keys.disableOne', { key: k.key_masked })} onClick={() => act(t(k.status === 'disabled' ? 'keys.enabledOne' : 'keys.disabledOne', { key: k.key_masked }), () => patch(k.id, { enabled: k.status === 'disabled' }))}>
                        {k.status === 'disabled' ? t('common.enable') : t('common.disable')}
                      </button>
                      <button type="button" className="danger" aria-label={t('keys.deleteOne', { key: k.key_masked })} onClick={() => window.confirm(t('keys.confirmDelete', { key: k.key_masked })) && act(t('keys.deletedOne', { key: k.key_masked }), () => api(`/tavily-keys/${k.id}`, { method: 'DELETE' }))}>
                        {t('common.delete')}
                      </button>
                    </td>
                  </tr>
                ))}
              </DataTable>
            )}
            <nav className="pager" aria-label={t('common.pages')}>
              <button type="button" disabled={cursors.length === 1} onClick={() => setCursors((c) => c.slice(0, -1))}>{t('common.previous')}</button>
              <span>{t('keys.pageOf', { count: page.total, total: f.num(page.total), page: cursors.length, pages: Math.max(1, Math.ceil(page.total / PAGE)) })}</span>
              <button type="button" disabled={!page.next_cursor} onClick={() => setCursors((c) => [...c, page.next_cursor])}>{t('common.next')}</button>
            </nav>
          </>
        )}
      </Pending>
    </section>
  );
}

export function StatusCell({ k }: { k: Key }) {
  const { t } = useTranslation();
  const f = useFormat();
  return (
    <>
      <span className={`badge ${k.status}`}>{t(`status.${k.status}`)}</span>
      {k.drift && <small className="error"> {t('keys.usedElsewhere')}: <DriftText d={k.drift} /></small>}
      {k.cooldown_until && (
        <small title={k.cooldown_reason ?? undefined}> {t('keys.resting', { until: f.dateTime(k.cooldown_until) })}</small>
      )}
    </>
  );
}

function ImportPanel({ onImported }: { onImported: () => void }) {
  const { t } = useTranslation();
  const [text, setText] = useState('');
  const [validate, setValidate] = useState(true);
  const [account, setAccount] = useState('');
  const run = useChange((body: string) => api<ImportResult>(`/tavily-keys?${qs({ validate, account: account.trim() })}`, { text: body }));

  const onFile = async (e: ChangeEvent<HTMLInputElement>) => {
    const file = e.target.files?.[0];
    if (file) setText(await file.text());
  };
  const r = run.data;
  return (
    <details className="panel" open>
      <summary>{t('keys.import.title')}</summary>
      <label htmlFor="import-text">{t('keys.import.text')}</label>
      <textarea id="import-text" rows={4} value={text} placeholder={t('keys.import.placeholder', { email: 'ops@acme.io' })} onChange={(e) => setText(e.target.value)} />
      <div className="toolbar">
        <label className="file">
          {t('keys.import.file')} <input type="file" accept=".txt,.csv,text/plain,text/csv" onChange={onFile} />
        </label>
        <label>
          <input type="checkbox" checked={validate} onChange={(e) => setValidate(e.target.checked)} /> {t('keys.import.validate')}
        </label>
        <label title={t('keys.import.accountHint')}>
          {t('keys.import.account')} <input value={account} placeholder="ops@acme.io" onChange={(e) => setAccount(e.target.value)} />
        </label>
        <button type="button" disabled={run.isPending || text.trim() === ''} onClick={() => run.mutate(text, { onSuccess: () => { setText(''); onImported(); } })}>
          {run.isPending ? t('keys.import.running') : t('keys.import.submit')}
        </button>
      </div>
      <ErrorAlert message={run.error?.message} />
      {r && (
        <div role="status" aria-label={t('keys.import.result')}>
          <p>
            {t('keys.import.summary', { added: r.added, duplicates: r.duplicates, rejected: r.rejected_count })}
            {r.accounts > 0 ? ` ${t('keys.import.inAccounts', { count: r.accounts })}` : ''}
          </p>
          {r.duplicate_inputs.length > 0 && (
            <InputList title={t('keys.import.duplicates')} items={r.duplicate_inputs} reason={(x) => t(x.reason === 'repeated in this import' ? 'keys.import.repeated' : 'keys.import.inPool')} />
          )}
          {r.rejected.length > 0 && <InputList title={t('keys.import.rejected')} items={r.rejected} reason={(x) => <span lang="en">{x.reason}</span>} />}
        </div>
      )}
    </details>
  );
}

function InputList<T extends { input: string }>({ title, items, reason }: { title: string; items: T[]; reason: (x: T) => ReactNode }) {
  return (
    <details open>
      <summary>{title}</summary>
      <ul>
        {items.map((x, i) => (
          <li key={i}>
            <code translate="no">{x.input}</code>: {reason(x)}
          </li>
        ))}
      </ul>
    </details>
  );
}

/** Refresh all keys or the selected ones; `only`: one key's page, one button. */
export function RefreshPanel({ selected, only }: { selected: number[]; only?: boolean }) {
  const { t } = useTranslation();
  const f = useFormat();
  const run = useChange((ids?: number[]) => api<RefreshResult>('/tavily-keys/refresh-quota', { json: ids ? { ids } : {} }));
  // The run's progress, followed while the request is under way.
  const progress = useQuery({ ...Q.refreshStatus(), enabled: run.isPending, refetchInterval: run.isPending ? 250 : false });
  const p = run.isPending ? progress.data?.progress : run.data ? { running: false, total: run.data.total, done: run.data.total } : undefined;
  const r = run.data;
  return (
    <div className="panel">
      <div className="toolbar">
        {only ? (
          <button type="button" disabled={run.isPending} onClick={() => run.mutate(selected)}>{t('keys.refresh.one')}</button>
        ) : (
          <>
            <button type="button" disabled={run.isPending} onClick={() => run.mutate(undefined)}>{t('keys.refresh.all')}</button>
            <button type="button" disabled={run.isPending || selected.length === 0} onClick={() => run.mutate(selected)}>{t('keys.refresh.selected')}</button>
          </>
        )}
        {p && (
          <label className="progress">
            {t('keys.refresh.progress')}
            <progress max={Math.max(1, p.total)} value={p.done} aria-valuetext={t('keys.refresh.of', { done: p.done, total: p.total })} />
            {f.num(p.done)} / {f.num(p.total)}
          </label>
        )}
      </div>
      <ErrorAlert message={run.error?.message} />
      {r && (
        <div role="status" aria-label={t('keys.refresh.result')}>
          <p>{t('keys.refresh.summary', { ok: r.success_count, total: r.total, ms: f.num(r.duration_ms), failed: r.failed_count })}</p>
          {r.failures.length > 0 && (
            <ul>{r.failures.map((x) => <li key={x.id}><code translate="no">{x.key_masked}</code>: <span lang="en">{x.error}</span></li>)}</ul>
          )}
        </div>
      )}
    </div>
  );
}

/** Keys whose account figures are identical: probably one account, for the admin to confirm. */
function SuggestionsPanel() {
  const { t } = useTranslation();
  const f = useFormat();
  const list = useQuery(Q.suggestions());
  const [names, setNames] = useState<Record<string, string>>({});
  const [done, setDone] = useState<string | null>(null);
  const confirm = useChange(async (s: Suggestion) => {
    if (s.account_id !== null) {
      await api(`/accounts/${s.account_id}/keys`, { json: { ids: s.key_ids } });
      return t('keys.suggest.added', { count: s.key_ids.length, name: s.account_name });
    }
    const name = (names[id(s)] ?? '').trim() || defaultName(s);
    await api('/accounts', { json: { name, key_ids: s.key_ids } });
    return t('keys.suggest.made', { count: s.key_ids.length, name });
  });
  useEffect(() => setDone(confirm.data ?? null), [confirm.data]);
  const id = (s: Suggestion) => s.key_ids.join(',');
  const defaultName = (s: Suggestion) => t('keys.suggest.defaultName', { plan: s.plan, key: s.keys[0]!.key_masked });
  const items = list.data?.items ?? [];
  if (items.length === 0) return done ? <p role="status">{t('common.done', { what: done })}</p> : null;
  return (
    <section className="panel" aria-labelledby="suggestions-title">
      <h2 id="suggestions-title">{t('keys.suggest.title')}</h2>
      <p className="muted">{t('keys.suggest.body')}</p>
      <Outcome done={done} error={confirm.error} />
      <ul className="suggestions">
        {items.map((s) => (
          <li key={id(s)} aria-label={t('keys.suggest.item', { keys: s.keys.map((k) => k.key_masked).join(', ') })}>
            <p>
              {s.keys.map((k) => <code key={k.id} translate="no">{k.key_masked}</code>).reduce<ReactNode[]>((a, c, i) => (i ? [...a, ', ', c] : [c]), [])}:{' '}
              {t('keys.suggest.figures', { plan: s.plan, used: f.num(s.plan_usage), limit: s.plan_limit === null ? '–' : f.num(s.plan_limit) })} <When at={s.read_at} />
            </p>
            {s.account_id === null ? (
              <label>
                {t('keys.suggest.name')} <input value={names[id(s)] ?? ''} placeholder={defaultName(s)} onChange={(e) => setNames((n) => ({ ...n, [id(s)]: e.target.value }))} />
              </label>
            ) : (
              <span>{t('keys.suggest.into', { name: s.account_name })} </span>
            )}
            <button type="button" onClick={() => confirm.mutate(s)}>{t('keys.suggest.confirm')}</button>
          </li>
        ))}
      </ul>
    </section>
  );
}

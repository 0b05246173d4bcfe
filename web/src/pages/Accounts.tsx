import { useQuery } from '@tanstack/react-query';
import { Trans, useTranslation } from 'react-i18next';
import { type Account, api, cycleStart, nextReset, runsDry } from '../api';
import { DataTable, Outcome, Pending, When } from '../components';
import { useFormat } from '../i18n';
import { Q, useAction } from '../query';

/** "Tavily counted 120 credits between … and …; 40 went through the pool." */
export function DriftText({ d }: { d: NonNullable<Account['drift']> }) {
  const { t } = useTranslation();
  const f = useFormat();
  return <>{t('accounts.drift', { tavily: f.num(d.tavily), since: f.dateTime(d.since), at: f.dateTime(d.at), pool: f.num(d.pool) })}</>;
}

/** Accounts: keys that share one Tavily account's credits, each counted once. */
export function AccountsPage() {
  const { t } = useTranslation();
  const f = useFormat();
  const list = useQuery(Q.accounts());
  const { act: run, done, error } = useAction();
  const act = (what: string, change: () => Promise<unknown>) => run(async () => (await change(), what));

  return (
    <section aria-labelledby="accounts-title">
      <h1 id="accounts-title">{t('accounts.title')}</h1>
      <p className="muted">
        <Trans i18nKey="accounts.intro" components={{ code: <code translate="no" /> }} />
      </p>
      <Outcome done={done} error={error} />
      <Pending q={list}>
        {(l) =>
          l.items.length === 0 ? (
            <p>{t('accounts.none')}</p>
          ) : (
            <DataTable label={t('accounts.table')} columns={[t('accounts.name'), t('accounts.keys'), t('keys.remaining'), t('keys.plan'), t('accounts.cycle'), t('accounts.last7'), t('accounts.runsDry'), t('accounts.elsewhere'), t('common.actions')]}>
              {l.items.map((a) => {
                const dry = a.remaining !== null ? runsDry(a.remaining, a.spent_7d) : null;
                const renewal = nextReset(cycleStart(a.cycle_started_at), Date.now());
                return (
                  <tr key={a.id}>
                    <td><a href={`#/keys?account=${a.id}`}>{a.name}</a></td>
                    <td>
                      {f.num(a.keys.total)}{' '}
                      <small className="muted">
                        ({t('accounts.keyCounts', { active: a.keys.active })}
                        {a.keys.exhausted ? `, ${t('accounts.exhaustedCount', { n: a.keys.exhausted })}` : ''}
                        {a.keys.invalid ? `, ${t('accounts.invalidCount', { n: a.keys.invalid })}` : ''})
                      </small>
                    </td>
                    <td data-testid={`account-remaining-${a.id}`}>{a.remaining === null ? <span className="muted">{t('common.unknown')}</span> : f.num(a.remaining)}</td>
                    <td>
                      <span translate="no">{a.plan ?? '–'}</span>
                      {a.plan_limit !== null && <small className="muted"> {f.num(a.plan_usage ?? 0)} / {f.num(a.plan_limit)}</small>}
                    </td>
                    <td>
                      {a.cycle_started_at ? <>{t('accounts.restartedBy')} <When at={a.cycle_started_at} /></> : <span className="muted">{t('accounts.noRestart')}</span>}
                      <br />
                      <small data-testid={`account-renews-${a.id}`}>{renewal.basis === 'cycle' ? t('accounts.renews', { date: f.date(new Date(renewal.at)) }) : t('accounts.renewsAssumed', { date: f.date(new Date(renewal.at)) })}</small>
                    </td>
                    <td>{f.num(a.spent_7d)}</td>
                    <td>{a.remaining === 0 ? t('overview.outOfCredits') : dry ? f.date(dry) : <span className="muted">{t('overview.forecast.idle')}</span>}</td>
                    <td className="error-cell">{a.drift ? <DriftText d={a.drift} /> : ''}</td>
                    <td className="actions">
                      <button
                        type="button"
                        className="secondary"
                        aria-label={t('accounts.renameOf', { name: a.name })}
                        onClick={() => {
                          const name = window.prompt(t('accounts.newName', { name: a.name }), a.name);
                          if (name && name.trim() && name.trim() !== a.name) act(t('accounts.renamed', { from: a.name, to: name.trim() }), () => api(`/accounts/${a.id}`, { method: 'PATCH', json: { name: name.trim() } }));
                        }}
                      >
                        {t('accounts.rename')}
                      </button>
                      {a.drift && (
                        <button type="button" className="secondary" aria-label={t('accounts.dismissOf', { name: a.name })} onClick={() => act(t('accounts.dismissed', { name: a.name }), () => api(`/accounts/${a.id}`, { method: 'PATCH', json: { drift: null } }))}>
                          {t('keyDetail.dismiss')}
                        </button>
                      )}
                      <button
                        type="button"
                        className="danger"
                        aria-label={t('accounts.deleteOf', { name: a.name })}
                        onClick={() => window.confirm(t('accounts.confirmDelete', { name: a.name })) && act(t('accounts.deleted', { name: a.name }), () => api(`/accounts/${a.id}`, { method: 'DELETE' }))}
                      >
                        {t('common.delete')}
                      </button>
                    </td>
                  </tr>
                );
              })}
            </DataTable>
          )
        }
      </Pending>
    </section>
  );
}

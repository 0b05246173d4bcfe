import { useQuery } from '@tanstack/react-query';
import { type FormEvent, Fragment, type KeyboardEvent, type ReactNode, useId, useRef, useState } from 'react';
import { Trans, useTranslation } from 'react-i18next';
import { SCOPE_ENDPOINTS, type ScopeEndpoint } from '../../../src/schemas/endpoint-names';
import { type Token, type TokenCreate, type TokenCreated, type TokenPatch, api } from '../api';
import { CopyButton, DataTable, ErrorAlert, Meter, Outcome, Pending, When, toggled } from '../components';
import { useFormat } from '../i18n';
import { Q, useAction, useChange } from '../query';
import { snippets } from '../snippets';

const optionalNumber = (v: string) => (v.trim() === '' ? null : Number(v));

/** A token's scopes in a line: what it may use, from where, until when, with which caps. */
function ScopesText({ t: tok }: { t: Token }) {
  const { t } = useTranslation();
  const f = useFormat();
  // Endpoint names and networks are identifiers: never translated.
  const ids = (list: string[]) => <span translate="no">{list.join(', ')}</span>;
  const parts: ReactNode[] = [];
  if (tok.endpoints) parts.push(<Trans key="e" i18nKey="tokens.scopes.only" components={{ list: ids(tok.endpoints) }} />);
  if (tok.networks) parts.push(<Trans key="n" i18nKey="tokens.scopes.from" components={{ list: ids(tok.networks) }} />);
  if (tok.expires_at) parts.push(t('tokens.scopes.until', { at: f.dateTime(tok.expires_at) }));
  const c = tok.caps;
  if (c) {
    if (c.advanced === false) parts.push(t('tokens.scopes.noAdvanced'));
    if (c.research_pro === false) parts.push(t('tokens.scopes.noPro'));
    if (c.max_results !== undefined) parts.push(t('tokens.scopes.maxResults', { n: c.max_results }));
    if (c.max_credits !== undefined) parts.push(t('tokens.scopes.maxCredits', { n: c.max_credits }));
  }
  if (tok.cache_ttl_s) parts.push(t('tokens.scopes.cache', { s: f.num(tok.cache_ttl_s) }));
  if (tok.cache_ttl_s === 0) parts.push(t('tokens.scopes.noCache'));
  if (parts.length === 0) return <>{t('tokens.scopes.everything')}</>;
  return <>{parts.map((p, i) => (i ? [<Fragment key={`s${i}`}>; </Fragment>, p] : p))}</>;
}

/** Spent this month against the budget, marked when the budget is spent. */
function Spend({ t: tok }: { t: Token }) {
  const { t } = useTranslation();
  const f = useFormat();
  if (tok.monthly_budget === null) return <span data-testid={`spent-${tok.id}`}>{f.num(tok.month_spent)}</span>;
  const spent = tok.month_spent >= tok.monthly_budget;
  return (
    <span data-testid={`spent-${tok.id}`}>
      <Meter value={tok.month_spent} max={tok.monthly_budget} over={spent} label={t('tokens.spentOf', { spent: tok.month_spent, budget: tok.monthly_budget })} />
      {tok.month_held > 0 && <span className="muted" data-testid={`held-${tok.id}`}> {t('tokens.held', { held: f.num(tok.month_held) })}</span>}
      {spent && <span className="badge exhausted">{t('tokens.budgetSpent')}</span>}
    </span>
  );
}

/** Copyable examples for every kind of client, filled with this server's address. */
export function Snippets({ token }: { token: string }) {
  const { t } = useTranslation();
  const all = snippets(window.location.origin, token);
  const [chosen, setChosen] = useState(all[0]!.id);
  const s = all.find((x) => x.id === chosen) ?? all[0]!;
  const list = useRef<HTMLDivElement>(null);
  const panel = useId();
  // The tabs' keyboard pattern: one tab stop; arrows, Home and End move between the tabs.
  const onKeyDown = (e: KeyboardEvent) => {
    const i = all.findIndex((x) => x.id === chosen);
    const to = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: all.length - 1 }[e.key];
    if (to === undefined) return;
    e.preventDefault();
    const next = (to + all.length) % all.length;
    setChosen(all[next]!.id);
    list.current?.querySelectorAll<HTMLButtonElement>('[role="tab"]')[next]?.focus();
  };
  return (
    <div className="snippets">
      <div role="tablist" aria-label={t('tokens.snippets')} className="tabs" ref={list} onKeyDown={onKeyDown}>
        {all.map((x) => (
          <button
            key={x.id}
            type="button"
            role="tab"
            aria-selected={x.id === chosen}
            aria-controls={panel}
            tabIndex={x.id === chosen ? 0 : -1}
            className={x.id === chosen ? '' : 'secondary'}
            onClick={() => setChosen(x.id)}
            translate="no"
          >
            {x.title}
          </button>
        ))}
      </div>
      <pre id={panel} role="tabpanel" tabIndex={0} aria-label={s.title} translate="no" data-testid={`snippet-${s.id}`}>
        <code>{s.code}</code>
      </pre>
      <CopyButton text={s.code} label={t('tokens.copySnippet', { title: s.title })} />
    </div>
  );
}

interface Draft {
  name: string;
  budget: string;
  rpm: string;
  endpoints: Set<ScopeEndpoint>;
  networks: string;
  expires: string;
  maxCredits: string;
  maxResults: string;
  noAdvanced: boolean;
  noPro: boolean;
  cache: string;
}
const draftOf = (tok?: Token): Draft => ({
  name: tok?.name ?? '',
  budget: tok?.monthly_budget?.toString() ?? '',
  rpm: tok?.rpm_limit?.toString() ?? '',
  endpoints: new Set(tok?.endpoints ?? SCOPE_ENDPOINTS),
  networks: tok?.networks?.join(', ') ?? '',
  expires: tok?.expires_at ? new Date(new Date(tok.expires_at).getTime() - new Date().getTimezoneOffset() * 60_000).toISOString().slice(0, 16) : '',
  maxCredits: tok?.caps?.max_credits?.toString() ?? '',
  maxResults: tok?.caps?.max_results?.toString() ?? '',
  noAdvanced: tok?.caps?.advanced === false,
  noPro: tok?.caps?.research_pro === false,
  cache: tok?.cache_ttl_s?.toString() ?? '',
});
/** The caps as the API takes them: only those set; none at all is null. */
function capsOf(d: Draft): TokenCreate['caps'] {
  const caps: NonNullable<TokenCreate['caps']> = {};
  if (d.maxCredits.trim()) caps.max_credits = Number(d.maxCredits);
  if (d.maxResults.trim()) caps.max_results = Number(d.maxResults);
  if (d.noAdvanced) caps.advanced = false;
  if (d.noPro) caps.research_pro = false;
  return Object.keys(caps).length ? caps : null;
}
const bodyOf = (d: Draft): TokenPatch & TokenCreate => ({
  name: d.name.trim(),
  monthly_budget: optionalNumber(d.budget),
  rpm_limit: optionalNumber(d.rpm),
  endpoints: d.endpoints.size === SCOPE_ENDPOINTS.length ? null : SCOPE_ENDPOINTS.filter((e) => d.endpoints.has(e)),
  networks: d.networks.trim() === '' ? null : d.networks.split(/[\s,]+/).filter(Boolean),
  expires_at: d.expires ? new Date(d.expires).toISOString() : null,
  caps: capsOf(d),
  cache_ttl_s: optionalNumber(d.cache),
});

/** The fields of a token: its name, limits and scopes. */
function TokenFields({ d, set }: { d: Draft; set: (d: Draft) => void }) {
  const { t } = useTranslation();
  return (
    <>
      <div className="toolbar">
        <label>{t('tokens.name')} <input value={d.name} onChange={(e) => set({ ...d, name: e.target.value })} required maxLength={100} /></label>
        <label>{t('tokens.budget')} <input type="number" min={0} value={d.budget} onChange={(e) => set({ ...d, budget: e.target.value })} placeholder={t('common.none')} /></label>
        <label>{t('tokens.rpm')} <input type="number" min={1} value={d.rpm} onChange={(e) => set({ ...d, rpm: e.target.value })} placeholder={t('tokens.noLimit')} /></label>
        <label>
          {t('tokens.cache')} <input type="number" min={0} value={d.cache} onChange={(e) => set({ ...d, cache: e.target.value })} placeholder={t('tokens.cacheDefault')} />
        </label>
        <label>{t('tokens.networks')} <input value={d.networks} onChange={(e) => set({ ...d, networks: e.target.value })} placeholder="10.0.0.0/8, 2001:db8::/32" /></label>
        <label>{t('tokens.expires')} <input type="datetime-local" value={d.expires} onChange={(e) => set({ ...d, expires: e.target.value })} /></label>
      </div>
      <fieldset>
        <legend>{t('tokens.endpoints')}</legend>
        {SCOPE_ENDPOINTS.map((e) => (
          <label key={e}>
            <input
              type="checkbox"
              checked={d.endpoints.has(e)}
              onChange={(ev) => set({ ...d, endpoints: toggled(d.endpoints, e, ev.target.checked) })}
            />{' '}
            <span translate="no">{e}</span>
          </label>
        ))}
      </fieldset>
      <fieldset>
        <legend>{t('tokens.caps')}</legend>
        <label>{t('tokens.maxCredits')} <input type="number" min={1} max={1000} className="narrow" value={d.maxCredits} onChange={(e) => set({ ...d, maxCredits: e.target.value })} placeholder={t('tokens.noLimit')} /></label>
        <label>{t('tokens.maxResults')} <input type="number" min={1} max={1000} className="narrow" value={d.maxResults} onChange={(e) => set({ ...d, maxResults: e.target.value })} placeholder={t('tokens.noLimit')} /></label>
        <label><input type="checkbox" checked={d.noAdvanced} onChange={(e) => set({ ...d, noAdvanced: e.target.checked })} /> {t('tokens.noAdvanced')}</label>
        <label><input type="checkbox" checked={d.noPro} onChange={(e) => set({ ...d, noPro: e.target.checked })} /> {t('tokens.noPro')}</label>
      </fieldset>
    </>
  );
}

export function TokensPage() {
  const { t } = useTranslation();
  const [showRevoked, setShowRevoked] = useState(false);
  const tokens = useQuery(Q.tokens(showRevoked));
  const [draft, setDraft] = useState<Draft>(draftOf());
  const [editing, setEditing] = useState<number | null>(null);
  const [edit, setEdit] = useState<Draft>(draftOf());
  const [usage, setUsage] = useState<number | null>(null);
  const create = useChange((body: TokenCreate) => api<TokenCreated>('/tokens', { json: body }));
  const { act, done, error } = useAction();

  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate(bodyOf(draft), { onSuccess: () => setDraft(draftOf()) });
  };
  const save = (e: FormEvent, tok: Token) => {
    e.preventDefault();
    const body: TokenPatch = bodyOf(edit);
    act(async () => t('tokens.saved', { name: (await api<Token>(`/tokens/${tok.id}`, { method: 'PATCH', json: body })).name }), () => setEditing(null));
  };

  return (
    <section aria-labelledby="tokens-title">
      <h1 id="tokens-title">{t('tokens.title')}</h1>
      <form className="panel" onSubmit={submit} aria-label={t('tokens.create')}>
        <TokenFields d={draft} set={setDraft} />
        <button type="submit" disabled={draft.name.trim() === '' || draft.endpoints.size === 0 || create.isPending}>{t('tokens.create')}</button>
        <ErrorAlert message={create.error?.message} />
      </form>
      {create.data && (
        <div role="status" aria-label={t('tokens.newToken')} className="panel">
          <p>{t('tokens.copyNow')}</p>
          <code data-testid="new-token" translate="no">{create.data.token}</code> <CopyButton text={create.data.token} />
          <h2>{t('tokens.howToUse')}</h2>
          <Snippets token={create.data.token} />
        </div>
      )}
      <Outcome done={done} error={error} />
      <div className="toolbar">
        <label>
          <input type="checkbox" checked={showRevoked} onChange={(e) => setShowRevoked(e.target.checked)} /> {t('tokens.showRevoked')}
        </label>
      </div>
      <Pending q={tokens}>
        {(list) =>
          list.items.length === 0 ? (
            <p>{t('tokens.none')}</p>
          ) : (
            <DataTable label={t('tokens.table')} columns={[t('tokens.name'), t('tokens.token'), t('tokens.spent'), t('tokens.rpmShort'), t('tokens.may'), t('tokens.lastUsed'), t('common.actions')]}>
              {list.items.map((tok) =>
                editing === tok.id ? (
                  <tr key={tok.id}>
                    <td colSpan={7}>
                      <form onSubmit={(e) => save(e, tok)} aria-label={t('tokens.editOf', { name: tok.name })}>
                        <TokenFields d={edit} set={setEdit} />
                        <button type="submit" disabled={edit.name.trim() === '' || edit.endpoints.size === 0}>{t('common.save')}</button>{' '}
                        <button type="button" className="secondary" onClick={() => setEditing(null)}>{t('common.cancel')}</button>
                      </form>
                    </td>
                  </tr>
                ) : (
                  <tr key={tok.id} className={tok.revoked_at ? 'revoked' : undefined}>
                    <td>
                      {tok.name}
                      {tok.revoked_at && <> <span className="badge disabled">{t('tokens.revoked')}</span> <small><When at={tok.revoked_at} /></small></>}
                    </td>
                    <td className="mono" translate="no">{tok.token_prefix}</td>
                    <td><Spend t={tok} /></td>
                    <td>{tok.rpm_limit ?? t('common.none')}</td>
                    <td><ScopesText t={tok} /></td>
                    <td><When at={tok.last_used_at} /></td>
                    <td className="actions">
                      <a href={`#/logs?token_id=${tok.id}&status=403`} aria-label={t('tokens.refusalsOf', { name: tok.name })}>{t('tokens.refusals')}</a>{' '}
                      <button type="button" className="secondary" aria-label={t('tokens.useOf', { name: tok.name })} aria-expanded={usage === tok.id} onClick={() => setUsage(usage === tok.id ? null : tok.id)}>{t('tokens.use')}</button>
                      {!tok.revoked_at && (
                        <>
                          <button type="button" className="secondary" aria-label={t('tokens.editOf', { name: tok.name })} onClick={() => { setEdit(draftOf(tok)); setEditing(tok.id); }}>{t('common.edit')}</button>
                          <button type="button" className="danger" aria-label={t('tokens.revokeOf', { name: tok.name })} onClick={() => window.confirm(t('tokens.confirmRevoke', { name: tok.name })) && act(async () => (await api(`/tokens/${tok.id}`, { method: 'DELETE' }), t('tokens.revokedDone', { name: tok.name })))}>{t('tokens.revoke')}</button>
                        </>
                      )}
                    </td>
                  </tr>
                ),
              ).flatMap((row, i) => {
                const tok = list.items[i]!;
                return usage === tok.id && editing !== tok.id
                  ? [row, (
                      <tr key={`usage-${tok.id}`}>
                        <td colSpan={7} className="usage">
                          <p className="muted">{t('tokens.usageNote', { prefix: tok.token_prefix })}</p>
                          <Snippets token={tok.token_prefix} />
                        </td>
                      </tr>
                    )]
                  : [row];
              })}
            </DataTable>
          )
        }
      </Pending>
    </section>
  );
}

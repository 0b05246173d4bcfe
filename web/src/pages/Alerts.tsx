import { useQuery } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { Trans, useTranslation } from 'react-i18next';
import { type AlertRules, type Rules, type Sink, type SinkCreate, type SinkPatch, type TestResultView, api } from '../api';
import { DataTable, ErrorAlert, Pending, When, toggled } from '../components';
import { Q, useAction } from '../query';

type Kind = Sink['kind'];
type EventType = NonNullable<Sink['events']>[number];
type Types = Rules['types'];

const numberOrNull = (v: string) => (v.trim() === '' ? null : Number(v));
const text = (v: number | null) => (v === null ? '' : String(v));

/** An event type's title and description, in the chosen language (the server's English as a fallback). */
function useTypeText() {
  const { t, i18n } = useTranslation();
  return (type: string, fallback = type) => ({
    title: i18n.exists(`alerts.types.${type}.title`) ? t(`alerts.types.${type}.title` as 'alerts.types.test.title') : fallback,
    description: i18n.exists(`alerts.types.${type}.description`) ? t(`alerts.types.${type}.description` as 'alerts.types.test.description') : '',
  });
}

/** What a sink listens to, in words: "all", "all but …", or the titles. */
function EventsText({ events, types }: { events: Sink['events']; types: Types }) {
  const { t } = useTranslation();
  const typeText = useTypeText();
  if (events === null || events.length === types.length) return <>{t('alerts.allEvents')}</>;
  const missing = types.filter((x) => !events.includes(x.type as EventType));
  if (missing.length <= 2) return <>{t('alerts.allBut', { list: missing.map((x) => typeText(x.type, x.title).title).join(', ') })}</>;
  return <>{events.map((e) => typeText(e).title).join(', ')}</>;
}

/** Where alerts go, when they fire, and what was sent. */
export function AlertsPage() {
  const { t } = useTranslation();
  const typeText = useTypeText();
  const rules = useQuery(Q.rules());
  const sinks = useQuery(Q.sinks());
  const events = useQuery({ ...Q.events(), refetchInterval: 15_000 });

  const [secret, setSecret] = useState<{ sink: string; secret: string } | null>(null);
  const [editing, setEditing] = useState<number | null>(null);
  const { act, done: notice, error } = useAction();

  const test = (s: Sink) =>
    act(async () => {
      const r = await api<TestResultView>(`/alerts/sinks/${s.id}/test`, { method: 'POST' });
      return r.ok ? t('alerts.testOk', { name: s.name, status: r.status, ms: r.ms }) : t('alerts.testFailed', { name: s.name, error: r.error });
    });
  const toggle = (s: Sink) => act(async () => (await api(`/alerts/sinks/${s.id}`, { method: 'PATCH', json: { enabled: !s.enabled } satisfies SinkPatch }), null));
  const remove = (s: Sink) => {
    // A cancelled confirm does nothing and says nothing.
    if (!window.confirm(t('alerts.confirmRemove', { name: s.name }))) return;
    act(async () => (await api(`/alerts/sinks/${s.id}`, { method: 'DELETE' }), t('alerts.removed', { name: s.name })));
  };

  return (
    <section aria-labelledby="alerts-title">
      <h1 id="alerts-title">{t('alerts.title')}</h1>
      <ErrorAlert message={error?.message} />
      {notice && (
        <p role="status" className="panel">
          {notice}
        </p>
      )}
      {secret && (
        <div role="status" aria-label={t('alerts.secretLabel')} className="panel">
          <p>
            <Trans i18nKey="alerts.secret" values={{ name: secret.sink }} components={{ code: <code translate="no" /> }} />
          </p>
          <code data-testid="sink-secret" translate="no">{secret.secret}</code>
        </div>
      )}
      <Pending q={rules}>
        {(r) => (
          <>
            <h2>{t('alerts.sinks')}</h2>
            <Pending q={sinks}>
              {(s) =>
                s.items.length === 0 ? (
                  <p>{t('alerts.noSinks')}</p>
                ) : (
                  <DataTable label={t('alerts.sinks')} columns={[t('alerts.name'), t('alerts.kind'), t('alerts.target'), t('alerts.events'), t('alerts.state'), t('common.actions')]}>
                    {s.items.map((x) =>
                      editing === x.id ? (
                        <tr key={x.id}>
                          <td colSpan={6}>
                            <SinkForm
                              types={r.types}
                              sink={x}
                              onCancel={() => setEditing(null)}
                              onSave={(body) =>
                                act(async () => {
                                  await api(`/alerts/sinks/${x.id}`, { method: 'PATCH', json: body });
                                  setEditing(null);
                                  return t('alerts.saved', { name: body.name ?? x.name });
                                })
                              }
                            />
                          </td>
                        </tr>
                      ) : (
                        <tr key={x.id}>
                          <td>{x.name}</td>
                          <td>{t(`alerts.kinds.${x.kind}`)}</td>
                          <td className="mono" translate="no">
                            {x.target}
                            {x.chat_id ? ` → ${x.chat_id}` : ''}
                          </td>
                          <td><EventsText events={x.events} types={r.types} /></td>
                          <td>{x.enabled ? t('alerts.enabled') : t('alerts.disabled')}</td>
                          <td className="actions">
                            <button type="button" className="secondary" aria-label={t('alerts.testOf', { name: x.name })} onClick={() => test(x)}>{t('alerts.test')}</button>
                            <button type="button" className="secondary" aria-label={t('alerts.editOf', { name: x.name })} onClick={() => setEditing(x.id)}>{t('common.edit')}</button>
                            <button type="button" className="secondary" onClick={() => toggle(x)} aria-label={t(x.enabled ? 'alerts.disableOf' : 'alerts.enableOf', { name: x.name })}>
                              {x.enabled ? t('common.disable') : t('common.enable')}
                            </button>
                            <button type="button" className="danger" aria-label={t('alerts.removeOf', { name: x.name })} onClick={() => remove(x)}>{t('alerts.remove')}</button>
                          </td>
                        </tr>
                      ),
                    )}
                  </DataTable>
                )
              }
            </Pending>
            <h2>{t('alerts.add')}</h2>
            <SinkForm
              types={r.types}
              onSave={(body) =>
                act(async () => {
                  const made = await api<{ item: Sink; secret?: string }>('/alerts/sinks', { json: body });
                  setSecret(made.secret ? { sink: made.item.name, secret: made.secret } : null);
                  return t('alerts.added', { name: made.item.name });
                })
              }
            />
            <h2>{t('alerts.when')}</h2>
            <RulesForm rules={r.rules} onSave={(body) => act(async () => (await api('/alerts/rules', { method: 'PUT', json: body }), t('alerts.rulesSaved')))} />
          </>
        )}
      </Pending>
      <h2>{t('alerts.recent')}</h2>
      <Pending q={events}>
        {(e) =>
          e.items.length === 0 ? (
            <p>{t('alerts.noEvents')}</p>
          ) : (
            <DataTable label={t('alerts.eventsTable')} columns={[t('logs.time'), t('alerts.event'), t('alerts.deliveries')]}>
              {e.items.map((ev) => (
                <tr key={ev.id}>
                  <td><When at={ev.created_at} /></td>
                  <td>
                    <strong>{typeText(ev.type).title}</strong>
                    <br />
                    <span lang="en">{ev.summary}</span> <small className="mono" translate="no">{ev.type}</small>
                  </td>
                  <td>
                    {ev.deliveries.length === 0
                      ? t('alerts.noSinkTakes')
                      : ev.deliveries.map((d) => (
                          <div key={d.sink_id} data-testid={`delivery-${ev.id}-${d.sink_id}`}>
                            {d.sink}: {t(`alerts.delivery.${d.state}`)}
                            {d.attempts > 1 ? ` ${t('alerts.afterAttempts', { count: d.attempts })}` : ''}
                            {d.state === 'pending' && d.attempts > 0 ? <>, {t('alerts.nextTry')} <When at={d.next_at} /></> : ''}
                            {d.last_error && d.state !== 'delivered' ? <span lang="en"> ({d.last_error})</span> : ''}
                          </div>
                        ))}
                  </td>
                </tr>
              ))}
            </DataTable>
          )
        }
      </Pending>
    </section>
  );
}

/** A sink's fields: new (kind, target, events) or an existing one's (name, target, events; blank target keeps it). */
function SinkForm({ types, sink, onSave, onCancel }: { types: Types; sink?: Sink; onSave: (body: SinkCreate & SinkPatch) => void; onCancel?: () => void }) {
  const { t } = useTranslation();
  const typeText = useTypeText();
  const [kind, setKind] = useState<Kind>(sink?.kind ?? 'webhook');
  const [name, setName] = useState(sink?.name ?? '');
  const [url, setUrl] = useState('');
  const [bot, setBot] = useState('');
  const [chat, setChat] = useState(sink?.chat_id ?? '');
  const [chosen, setChosen] = useState<Set<string>>(new Set(sink?.events ?? types.map((x) => x.type)));
  const editing = sink !== undefined;

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const events = chosen.size === types.length ? null : ([...chosen] as EventType[]);
    // Editing: a blank URL or bot token keeps the stored one (it is shown masked only).
    const target = kind === 'telegram' ? { ...(bot.trim() ? { bot_token: bot.trim() } : {}), chat_id: chat.trim() } : url.trim() ? { url: url.trim() } : {};
    onSave((editing ? { name: name.trim(), ...target, events } : { name: name.trim(), kind, ...target, events }) as SinkCreate & SinkPatch);
    if (!editing) {
      setName('');
      setUrl('');
      setBot('');
      setChat('');
    }
  };

  return (
    <form className="panel" onSubmit={submit} aria-label={editing ? t('alerts.editOf', { name: sink.name }) : t('alerts.add')}>
      <div className="toolbar">
        <label>
          {t('alerts.name')} <input value={name} onChange={(e) => setName(e.target.value)} required maxLength={100} />
        </label>
        <label>
          {t('alerts.kind')}{' '}
          <select value={kind} disabled={editing} onChange={(e) => setKind(e.target.value as Kind)}>
            <option value="webhook">{t('alerts.kinds.webhook')}</option>
            <option value="slack">{t('alerts.kinds.slack')}</option>
            <option value="telegram">{t('alerts.kinds.telegram')}</option>
          </select>
        </label>
        {kind === 'telegram' ? (
          <>
            <label>
              {t('alerts.botToken')} <input value={bot} onChange={(e) => setBot(e.target.value)} required={!editing} placeholder={editing ? t('alerts.keep') : '123456789:AA…'} autoComplete="off" />
            </label>
            <label>
              {t('alerts.chatId')} <input value={chat} onChange={(e) => setChat(e.target.value)} required placeholder="-1001234567890 / @channel" />
            </label>
          </>
        ) : (
          <label>
            URL <input type="url" value={url} onChange={(e) => setUrl(e.target.value)} required={!editing} placeholder={editing ? t('alerts.keep') : kind === 'slack' ? 'https://hooks.slack.com/services/…' : 'https://hooks.acme.io/tavily-pool'} />
          </label>
        )}
      </div>
      <fieldset>
        <legend>{t('alerts.events')}</legend>
        {types.map((x) => {
          const tt = typeText(x.type, x.title);
          return (
            <label key={x.type} title={tt.description}>
              <input
                type="checkbox"
                checked={chosen.has(x.type)}
                onChange={(e) => setChosen(toggled(chosen, x.type, e.target.checked))}
              />{' '}
              {tt.title}
            </label>
          );
        })}
      </fieldset>
      <button type="submit" disabled={name.trim() === '' || chosen.size === 0}>
        {editing ? t('common.save') : t('alerts.addButton')}
      </button>{' '}
      {onCancel && (
        <button type="button" className="secondary" onClick={onCancel}>
          {t('common.cancel')}
        </button>
      )}
    </form>
  );
}

function RulesForm({ rules, onSave }: { rules: AlertRules; onSave: (r: Partial<AlertRules>) => void }) {
  const { t } = useTranslation();
  const [credits, setCredits] = useState(text(rules.credits_below));
  const [days, setDays] = useState(text(rules.days_left_below));
  const [keys, setKeys] = useState(text(rules.active_keys_below));
  const [percents, setPercents] = useState(rules.token_budget_percents.join(', '));
  const [share, setShare] = useState(rules.refresh_failure_share === null ? '' : String(Math.round(rules.refresh_failure_share * 100)));
  const [feed, setFeed] = useState(String(rules.feed_lost_after_s));

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const shareNum = numberOrNull(share);
    onSave({
      credits_below: numberOrNull(credits),
      days_left_below: numberOrNull(days),
      active_keys_below: numberOrNull(keys),
      token_budget_percents: percents.split(',').map((p) => p.trim()).filter(Boolean).map(Number),
      refresh_failure_share: shareNum === null ? null : shareNum / 100,
      feed_lost_after_s: Number(feed),
    });
  };

  const off = t('alerts.off');
  return (
    <form className="panel toolbar" onSubmit={submit} aria-label={t('alerts.rules')}>
      <label>{t('alerts.rule.credits')} <input type="number" min={0} value={credits} onChange={(e) => setCredits(e.target.value)} placeholder={off} /></label>
      <label>{t('alerts.rule.days')} <input type="number" min={0} step="any" value={days} onChange={(e) => setDays(e.target.value)} placeholder={off} /></label>
      <label>{t('alerts.rule.keys')} <input type="number" min={1} value={keys} onChange={(e) => setKeys(e.target.value)} placeholder={off} /></label>
      <label>{t('alerts.rule.budget')} <input value={percents} onChange={(e) => setPercents(e.target.value)} placeholder="80, 90, 100" /></label>
      <label>{t('alerts.rule.failures')} <input type="number" min={0} max={100} value={share} onChange={(e) => setShare(e.target.value)} placeholder={off} /></label>
      <label>{t('alerts.rule.feed')} <input type="number" min={10} value={feed} onChange={(e) => setFeed(e.target.value)} required /></label>
      <button type="submit">{t('alerts.saveRules')}</button>
    </form>
  );
}

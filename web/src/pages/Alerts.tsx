import { type FormEvent, useCallback, useEffect, useState } from 'react';
import { api } from '../api';
import type { AlertRules, EventView, RulesView, SinkView, TestResultView } from '../api';
import { DataTable, ErrorAlert } from '../components';

type Kind = SinkView['kind'];
type EventType = NonNullable<SinkView['events']>[number];

const numberOrNull = (v: string) => (v.trim() === '' ? null : Number(v));
const text = (v: number | null) => (v === null ? '' : String(v));

/** What a sink listens to, in words: "all", "all but …", or the titles. */
function eventsText(events: SinkView['events'], types: RulesView['types']): string {
  if (events === null || events.length === types.length) return 'all';
  const title = (t: string) => types.find((x) => x.type === t)?.title ?? t;
  const missing = types.filter((t) => !events.includes(t.type as EventType));
  if (missing.length <= 2) return `all but ${missing.map((t) => t.title).join(', ')}`;
  return events.map(title).join(', ');
}

/** Where alerts go, when they fire, and what was sent. */
export function AlertsPage() {
  const [rules, setRules] = useState<RulesView | null>(null);
  const [sinks, setSinks] = useState<SinkView[] | null>(null);
  const [events, setEvents] = useState<EventView[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [secret, setSecret] = useState<{ sink: string; secret: string } | null>(null);

  const load = useCallback(async () => {
    try {
      const [r, s, e] = await Promise.all([
        api<RulesView>('/alerts/rules'),
        api<{ items: SinkView[] }>('/alerts/sinks'),
        api<{ items: EventView[] }>('/alerts/events?limit=50'),
      ]);
      setRules(r);
      setSinks(s.items);
      setEvents(e.items);
    } catch (err) {
      setError((err as Error).message);
    }
  }, []);
  useEffect(() => {
    void load();
  }, [load]);

  const act = async (what: () => Promise<string | void>) => {
    setError(null);
    setNotice(null);
    try {
      const said = await what();
      if (said) setNotice(said);
      await load();
    } catch (err) {
      setError((err as Error).message);
    }
  };

  const test = (s: SinkView) =>
    act(async () => {
      const r = await api<TestResultView>(`/alerts/sinks/${s.id}/test`, { method: 'POST' });
      return r.ok ? `Test sent to “${s.name}”: the receiver answered ${r.status} in ${r.ms} ms.` : `Test to “${s.name}” failed: ${r.error}`;
    });
  const toggle = (s: SinkView) => act(async () => void (await api(`/alerts/sinks/${s.id}`, { method: 'PATCH', json: { enabled: !s.enabled } })));
  const remove = (s: SinkView) =>
    act(async () => {
      if (!window.confirm(`Remove the sink “${s.name}”? Its pending deliveries go with it.`)) return 'Nothing was removed.';
      await api(`/alerts/sinks/${s.id}`, { method: 'DELETE' });
      return `Removed “${s.name}”.`;
    });

  return (
    <section aria-labelledby="alerts-title">
      <h1 id="alerts-title">Alerts</h1>
      <ErrorAlert message={error} />
      {notice && (
        <p role="status" className="panel">
          {notice}
        </p>
      )}
      {secret && (
        <div role="status" aria-label="Signing secret" className="panel">
          <p>
            The signing secret of “{secret.sink}”: copy it now, it is shown this once. Receivers check the
            <code> X-Tavily-Pool-Signature</code> header with it (see the README).
          </p>
          <code data-testid="sink-secret">{secret.secret}</code>
        </div>
      )}
      {!rules || !sinks || !events ? (
        <p aria-busy="true">Loading…</p>
      ) : (
        <>
          <h2>Sinks</h2>
          {sinks.length === 0 ? (
            <p>No sinks yet: add a webhook, a Slack-compatible URL or a Telegram bot below to be told when keys fail or credits run low.</p>
          ) : (
            <DataTable label="Sinks" columns={['Name', 'Kind', 'Target', 'Events', 'State', 'Actions']}>
              {sinks.map((s) => (
                <tr key={s.id}>
                  <td>{s.name}</td>
                  <td>{s.kind}</td>
                  <td className="mono">
                    {s.target}
                    {s.chat_id ? ` → ${s.chat_id}` : ''}
                  </td>
                  <td>{eventsText(s.events, rules.types)}</td>
                  <td>{s.enabled ? 'enabled' : 'disabled'}</td>
                  <td>
                    <button type="button" className="secondary" aria-label={`Send a test to ${s.name}`} onClick={() => test(s)}>
                      Send a test
                    </button>{' '}
                    <button type="button" className="secondary" onClick={() => toggle(s)} aria-label={`${s.enabled ? 'Disable' : 'Enable'} ${s.name}`}>
                      {s.enabled ? 'Disable' : 'Enable'}
                    </button>{' '}
                    <button type="button" className="danger" aria-label={`Remove ${s.name}`} onClick={() => remove(s)}>
                      Remove
                    </button>
                  </td>
                </tr>
              ))}
            </DataTable>
          )}
          <AddSink
            types={rules.types}
            onAdd={(body, name) =>
              act(async () => {
                const r = await api<{ item: SinkView; secret?: string }>('/alerts/sinks', { json: body });
                setSecret(r.secret ? { sink: name, secret: r.secret } : null);
                return `Added “${r.item.name}”. Send it a test to check that it arrives.`;
              })
            }
          />
          <h2>When alerts fire</h2>
          <RulesForm
            rules={rules.rules}
            onSave={(r) =>
              act(async () => {
                await api('/alerts/rules', { method: 'PUT', json: r });
                return 'Saved: the rules apply from the next check (within a minute).';
              })
            }
          />
          <h2>Recent events</h2>
          {events.length === 0 ? (
            <p>No events yet.</p>
          ) : (
            <DataTable label="Events" columns={['Time', 'Event', 'Deliveries']}>
              {events.map((e) => (
                <tr key={e.id}>
                  <td>{new Date(e.created_at).toLocaleString()}</td>
                  <td>
                    <strong>{e.summary}</strong>
                    <br />
                    <small className="mono">{e.type}</small>
                  </td>
                  <td>
                    {e.deliveries.length === 0
                      ? 'no sink takes it'
                      : e.deliveries.map((d) => (
                          <div key={d.sink_id} data-testid={`delivery-${e.id}-${d.sink_id}`}>
                            {d.sink}: {d.state}
                            {d.attempts > 1 ? ` after ${d.attempts} attempts` : ''}
                            {d.state === 'pending' && d.attempts > 0 ? `, next try ${new Date(d.next_at).toLocaleTimeString()}` : ''}
                            {d.last_error && d.state !== 'delivered' ? ` (${d.last_error})` : ''}
                          </div>
                        ))}
                  </td>
                </tr>
              ))}
            </DataTable>
          )}
        </>
      )}
    </section>
  );
}

function AddSink({ types, onAdd }: { types: RulesView['types']; onAdd: (body: object, name: string) => void }) {
  const [kind, setKind] = useState<Kind>('webhook');
  const [name, setName] = useState('');
  const [url, setUrl] = useState('');
  const [bot, setBot] = useState('');
  const [chat, setChat] = useState('');
  const [chosen, setChosen] = useState<Set<string>>(new Set(types.map((t) => t.type)));

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const all = chosen.size === types.length;
    const events = all ? null : ([...chosen] as EventType[]);
    const target = kind === 'telegram' ? { bot_token: bot.trim(), chat_id: chat.trim() } : { url: url.trim() };
    onAdd({ name: name.trim(), kind, ...target, events }, name.trim());
    setName('');
    setUrl('');
    setBot('');
    setChat('');
  };

  return (
    <form className="panel" onSubmit={submit} aria-label="Add a sink">
      <div className="toolbar">
        <label>
          Name <input value={name} onChange={(e) => setName(e.target.value)} required maxLength={100} />
        </label>
        <label>
          Kind{' '}
          <select value={kind} onChange={(e) => setKind(e.target.value as Kind)}>
            <option value="webhook">Webhook (signed JSON)</option>
            <option value="slack">Slack, Mattermost, Discord (/slack)</option>
            <option value="telegram">Telegram bot</option>
          </select>
        </label>
        {kind === 'telegram' ? (
          <>
            <label>
              Bot token <input value={bot} onChange={(e) => setBot(e.target.value)} required placeholder="123456789:AA…" autoComplete="off" />
            </label>
            <label>
              Chat id <input value={chat} onChange={(e) => setChat(e.target.value)} required placeholder="-1001234567890 or @channel" />
            </label>
          </>
        ) : (
          <label>
            URL <input type="url" value={url} onChange={(e) => setUrl(e.target.value)} required placeholder={kind === 'slack' ? 'https://hooks.slack.com/services/…' : 'https://example.com/hooks/tavily-pool'} />
          </label>
        )}
      </div>
      <fieldset>
        <legend>Events</legend>
        {types.map((t) => (
          <label key={t.type} title={t.description}>
            <input
              type="checkbox"
              checked={chosen.has(t.type)}
              onChange={(e) => {
                const next = new Set(chosen);
                if (e.target.checked) next.add(t.type);
                else next.delete(t.type);
                setChosen(next);
              }}
            />{' '}
            {t.title}
          </label>
        ))}
      </fieldset>
      <button type="submit" disabled={name.trim() === '' || chosen.size === 0}>
        Add sink
      </button>
    </form>
  );
}

function RulesForm({ rules, onSave }: { rules: AlertRules; onSave: (r: Partial<AlertRules>) => void }) {
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
      token_budget_percents: percents
        .split(',')
        .map((p) => p.trim())
        .filter(Boolean)
        .map(Number),
      refresh_failure_share: shareNum === null ? null : shareNum / 100,
      feed_lost_after_s: Number(feed),
    });
  };

  return (
    <form className="panel toolbar" onSubmit={submit} aria-label="Alert rules">
      <label>
        Credits below <input type="number" min={0} value={credits} onChange={(e) => setCredits(e.target.value)} placeholder="off" />
      </label>
      <label>
        Days left below <input type="number" min={0} step="any" value={days} onChange={(e) => setDays(e.target.value)} placeholder="off" />
      </label>
      <label>
        Active keys below <input type="number" min={1} value={keys} onChange={(e) => setKeys(e.target.value)} placeholder="off" />
      </label>
      <label>
        Token budget at (%) <input value={percents} onChange={(e) => setPercents(e.target.value)} placeholder="80, 90, 100" />
      </label>
      <label>
        Refresh failures above (%) <input type="number" min={0} max={100} value={share} onChange={(e) => setShare(e.target.value)} placeholder="off" />
      </label>
      <label>
        Change feed lost after (s) <input type="number" min={10} value={feed} onChange={(e) => setFeed(e.target.value)} required />
      </label>
      <button type="submit">Save rules</button>
    </form>
  );
}

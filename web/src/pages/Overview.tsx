import { useQuery } from '@tanstack/react-query';
import { Suspense, lazy } from 'react';
import { useTranslation } from 'react-i18next';
import { type AccountList, type Stats, type Summary, perDay, runsDry } from '../api';
import { Pending, When } from '../components';
import { useFormat } from '../i18n';
import { Q } from '../query';

const Chart = lazy(() => import('../charts'));
const DAY = 24 * 3600_000;
const STATUSES = ['active', 'exhausted', 'invalid', 'disabled'] as const;

/** The last `n` buckets up to now (days `YYYY-MM-DD`, or hours `YYYY-MM-DDTHH:00:00Z`), empty ones as zero. */
export function lastBuckets<T extends { bucket: string }>(rows: T[], n: number, stepMs: number, key: (d: Date) => string, empty: (bucket: string) => T): T[] {
  const byBucket = new Map(rows.map((r) => [r.bucket, r]));
  const now = Date.now();
  return Array.from({ length: n }, (_, i) => {
    const b = key(new Date(now - (n - 1 - i) * stepMs));
    return byBucket.get(b) ?? empty(b);
  });
}

const dayKey = (d: Date) => d.toISOString().slice(0, 10);
const hourKey = (d: Date) => `${d.toISOString().slice(0, 13)}:00:00Z`;
const zero = (bucket: string) => ({ bucket, requests: 0, credits: 0, errors: 0 });

export function OverviewPage() {
  const { t } = useTranslation();
  const from = new Date(Math.floor(Date.now() / 3600_000) * 3600_000 - 14 * DAY).toISOString();
  const summary = useQuery({ ...Q.summary(), refetchInterval: 30_000 });
  const stats = useQuery({ ...Q.stats(from), refetchInterval: 60_000 });
  const accounts = useQuery(Q.accounts());
  const tokens = useQuery(Q.tokens(false));
  return (
    <section aria-labelledby="overview-title">
      <h1 id="overview-title">{t('overview.title')}</h1>
      <Pending q={summary}>
        {(s) => (
          <>
            {(s.keys.total === 0 || tokens.data?.items.length === 0) && <GettingStarted summary={s} tokens={tokens.data?.items.length ?? 0} />}
            {s.keys.total > 0 && (
              <Pending q={stats}>{(st) => <Figures summary={s} stats={st} accounts={accounts.data ?? null} />}</Pending>
            )}
          </>
        )}
      </Pending>
    </section>
  );
}

/** The empty pool's guide: add keys, refresh them, make a token, point a client at the server. */
function GettingStarted({ summary, tokens }: { summary: Summary; tokens: number }) {
  const { t } = useTranslation();
  const steps = [
    { done: summary.keys.total > 0, title: t('overview.start.keys'), body: t('overview.start.keysBody'), href: '#/keys', link: t('overview.start.keysLink') },
    { done: summary.last_refreshed_at !== null, title: t('overview.start.refresh'), body: t('overview.start.refreshBody'), href: '#/keys', link: t('overview.start.refreshLink') },
    { done: tokens > 0, title: t('overview.start.token'), body: t('overview.start.tokenBody'), href: '#/tokens', link: t('overview.start.tokenLink') },
  ];
  return (
    <section className="panel" aria-labelledby="start-title">
      <h2 id="start-title">{t('overview.start.title')}</h2>
      <ol className="steps">
        {steps.map((s) => (
          <li key={s.title} className={s.done ? 'done' : undefined}>
            <strong>
              {s.done ? '✓ ' : ''}
              {s.title}
            </strong>{' '}
            <span className="muted">{s.done ? t('overview.start.done') : s.body}</span> {!s.done && <a href={s.href}>{s.link}</a>}
          </li>
        ))}
      </ol>
    </section>
  );
}

function Forecast({ summary }: { summary: Summary }) {
  const { t } = useTranslation();
  const f = useFormat();
  const spent = summary.spent_7d;
  const usable = summary.keys.by_status.active;
  let text: string;
  let note: string;
  let withResets: string | null = null;
  if (usable === 0) {
    text = t('overview.forecast.noUsable');
    note = t('overview.forecast.noUsableNote');
  } else if (summary.total_remaining === 0 && summary.unknown_quota === summary.keys.total - summary.keys.by_status.disabled) {
    text = t('overview.forecast.unknown');
    note = t('overview.forecast.unknownNote');
  } else if (summary.total_remaining === 0) {
    text = t('overview.forecast.empty');
    note = t('overview.forecast.emptyNote');
  } else if (spent === 0) {
    text = t('overview.forecast.idle');
    note = t('overview.forecast.idleNote');
  } else {
    // Counting the resets to come: each account's credits renew at its cycle start.
    const at = summary.forecast.runs_dry_at;
    const dry = at ? new Date(at) : null;
    text = !dry || dry.getTime() - Date.now() > 365 * DAY ? t('overview.forecast.beyondYear') : f.date(dry);
    note = t('overview.forecast.rate', { perDay: f.num(Math.round(perDay(spent) * 10) / 10) });
    const plain = summary.forecast.runs_dry_without_resets_at;
    if (plain && plain !== at) withResets = t('overview.forecast.withResets', { date: f.date(new Date(plain)) });
  }
  return (
    <figure className="card" aria-label={t('overview.forecast.title')}>
      <figcaption>{t('overview.forecast.title')}</figcaption>
      <strong data-testid="forecast">{text}</strong>
      <small>{note}</small>
      {withResets && <small data-testid="forecast-resets">{withResets}</small>}
    </figure>
  );
}

/** What the answer cache saved in the last 7 days. */
function Saved({ summary }: { summary: Summary }) {
  const { t } = useTranslation();
  const f = useFormat();
  const c = summary.cache;
  return (
    <figure className="card" aria-label={t('overview.cache.title')}>
      <figcaption>{t('overview.cache.title')}</figcaption>
      <strong data-testid="cache-saved">{t('overview.cache.credits', { n: f.num(c.saved_7d) })}</strong>
      <small>{c.hits_7d + c.joined_7d > 0 ? t('overview.cache.how', { hits: f.num(c.hits_7d), joined: f.num(c.joined_7d) }) : t('overview.cache.none')}</small>
    </figure>
  );
}

/** Credits that lapse within a week unless spent: by account, soonest first. */
function Lapsing({ summary }: { summary: Summary }) {
  const { t } = useTranslation();
  const f = useFormat();
  const list = summary.forecast.lapsing_7d;
  if (list.length === 0) return null;
  return (
    <figure className="card" aria-label={t('overview.lapsing.title')}>
      <figcaption>{t('overview.lapsing.title', { n: f.num(summary.forecast.lapsing_7d_total) })}</figcaption>
      <ul className="statuses" data-testid="lapsing">
        {list.map((l) => (
          <li key={`${l.account_id ?? 'own'}-${l.lapses_at}`}>
            {l.name ?? t('overview.lapsing.own', { count: l.keys })}: {t('overview.lapsing.line', { credits: f.num(l.credits), date: f.date(new Date(l.lapses_at)) })}
            {l.basis === 'calendar' && <small className="muted"> {t('overview.lapsing.assumed')}</small>}
          </li>
        ))}
      </ul>
    </figure>
  );
}

function Figures({ summary, stats, accounts }: { summary: Summary; stats: Stats; accounts: AccountList | null }) {
  const { t } = useTranslation();
  const f = useFormat();
  // Accounts that run dry first (at their own 7-day burn rate); those out of credits first of all.
  const byDryDate = (accounts?.items ?? [])
    .map((a) => ({ a, dry: a.remaining === 0 ? new Date(0) : a.remaining !== null ? runsDry(a.remaining, a.spent_7d) : null }))
    .sort((x, y) => (x.dry?.getTime() ?? Infinity) - (y.dry?.getTime() ?? Infinity))
    .slice(0, 5);
  const last = summary.refresh.last;
  const days = lastBuckets(stats.by_day, 14, DAY, dayKey, zero);
  const hours = lastBuckets(stats.by_hour, 24, 3600_000, hourKey, zero);
  return (
    <>
      <div className="cards">
        <figure className="card" aria-label={t('overview.remaining')}>
          <figcaption>{t('overview.remaining')}</figcaption>
          <strong data-testid="total-remaining">{f.num(summary.total_remaining)}</strong>
          {summary.unknown_quota > 0 && <small>{t('overview.notRefreshed', { count: summary.unknown_quota })}</small>}
          {summary.accounts > 0 && <small>{t('overview.accountsOnce', { count: summary.accounts })}</small>}
        </figure>
        <figure className="card" aria-label={t('overview.byStatus')}>
          <figcaption>{t('overview.keysCount', { count: summary.keys.total })}</figcaption>
          <ul className="statuses">
            {STATUSES.map((s) => (
              <li key={s}>
                <span className={`badge ${s}`}>{t(`status.${s}`)}</span> <span data-testid={`count-${s}`}>{f.num(summary.keys.by_status[s])}</span>
              </li>
            ))}
          </ul>
        </figure>
        <Forecast summary={summary} />
        <Saved summary={summary} />
        <Lapsing summary={summary} />
        <figure className="card" aria-label={t('overview.lastRefresh')}>
          <figcaption>{t('overview.lastRefresh')}</figcaption>
          {last ? (
            <p>
              <When at={last.finished_at} />: {t('overview.refreshed', { ok: f.num(last.success_count), total: f.num(last.total), ms: f.num(last.duration_ms) })}
              {last.failed_count > 0 ? t('overview.refreshFailed', { count: last.failed_count }) : ''}
            </p>
          ) : (
            <p>{t('overview.noRefresh')}</p>
          )}
        </figure>
      </div>
      {byDryDate.length > 0 && accounts && (
        <figure className="card" aria-label={t('nav.accounts')}>
          <figcaption>
            <a href="#/accounts">{t('overview.accountsFirst', { count: accounts.total })}</a>
          </figcaption>
          <ul className="statuses">
            {byDryDate.map(({ a, dry }) => (
              <li key={a.id}>
                {a.name}: {a.remaining === null ? t('common.unknown') : t('overview.left', { credits: f.num(a.remaining) })},{' '}
                {a.remaining === 0 ? t('overview.outOfCredits') : dry ? t('overview.runsDryOn', { date: f.date(dry) }) : t('overview.forecast.idle')}
              </li>
            ))}
          </ul>
        </figure>
      )}
      <div className="cards wide">
        <Suspense fallback={<p aria-busy="true">{t('common.loading')}</p>}>
          <Chart
            title={t('overview.creditsChart')}
            unit={t('overview.creditsUnit')}
            points={days.map((d) => ({ at: `${d.bucket}T00:00:00Z`, credits: d.credits }))}
            series={[{ key: 'credits', name: t('overview.creditsUnit'), color: 'var(--accent)' }]}
          />
          <Chart
            hours
            title={t('overview.requestsChart')}
            unit={t('overview.requestsUnit')}
            points={hours.map((h) => ({ at: h.bucket, ok: h.requests - h.errors, failed: h.errors }))}
            series={[
              { key: 'ok', name: t('overview.succeeded'), color: 'var(--accent)' },
              { key: 'failed', name: t('overview.failed'), color: 'var(--danger)' },
            ]}
          />
        </Suspense>
      </div>
    </>
  );
}

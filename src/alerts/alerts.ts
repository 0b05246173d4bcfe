import type { Logger } from 'pino';
import type { Bus } from '../cluster/bus.js';
import type { Config } from '../config.js';
import type { KeyCipher } from '../crypto.js';
import type { Db, DialectKind } from '../db/database.js';
import type { AccountRefreshWrite } from '../db/repositories/accounts.js';
import type { AlertRepository, SinkRow } from '../db/repositories/alerts.js';
import type { RefreshWrite } from '../db/repositories/keys.js';
import type { LogRepository } from '../db/repositories/logs.js';
import type { TokenRegistry } from '../gateway/tokens.js';
import type { KeyPool } from '../pool/pool.js';
import type { ProxySettings } from '../tavily/client.js';
import { count } from '../text.js';
import { AlertDelivery } from './delivery.js';
import type { AlertEvent, NewAlertEvent } from '../schemas/alert-events.js';
import { type HealthChange, healthEvents } from './keys.js';
import { burnWindowStart, daysLeft, perDay } from '../forecast.js';
import { readRules } from './rules.js';
import { type AlertRules, DEFAULT_RULES } from '../schemas/alerts.js';
import { DestinationGuard } from './destinations.js';
import { type OpenSink, type SendResult, SinkSender } from './sinks.js';

/** The ALERT_* settings, and the proxy deliveries go through. */
export type AlertsConfig = Config['alerts'] & { proxy?: ProxySettings };

export interface AlertsDeps {
  db: Db;
  dialect: DialectKind;
  repo: AlertRepository;
  cipher: KeyCipher;
  pool: KeyPool;
  tokens: TokenRegistry;
  logs: LogRepository;
  /** PostgreSQL's change feed (set once it runs); null on SQLite. */
  bus: () => Bus | null;
  log: Logger;
  config: AlertsConfig;
  /** Each delivery's outcome (the metrics count them). */
  onDelivery?: (result: 'delivered' | 'retry' | 'failed') => void;
}

/** What a refresh found, as its transaction writes it. */
export interface RefreshRun {
  total: number;
  failures: ReadonlyArray<{ id: number; key_masked: string; error: string; status_code: number | null }>;
  writes: readonly RefreshWrite[];
  accountWrites: readonly AccountRefreshWrite[];
  drift: ReadonlyArray<{ id: number | null; key_masked: string | null; account_id: number | null; tavily: number; pool: number; since: string; at: string }>;
}

/**
 * Alerts: events recorded in the outbox by the transactions that cause them (a flush that
 * marks keys invalid, a refresh), the pool's conditions checked now and then, and the outbox
 * delivered to the sinks. A condition's event fires once when it starts to hold, and (for the
 * pool's conditions) once more, resolved, when it stops.
 */
export class Alerts {
  readonly delivery: AlertDelivery;
  /** Where sinks may lead: checked when one is saved and on every send. */
  readonly guard: DestinationGuard;
  readonly #sender: SinkSender;
  #timer: NodeJS.Timeout | null = null;
  #checking: Promise<number> | null = null;
  /** The rules as last read (each check reads them; a change here applies at once). */
  #rules: AlertRules = { ...DEFAULT_RULES };
  /** A transaction recorded events: deliver once it has committed. */
  #recorded = false;

  constructor(private readonly d: AlertsDeps) {
    this.guard = new DestinationGuard({ denyPrivate: d.config.denyPrivate, allow: d.config.allow });
    this.#sender = new SinkSender({ timeoutMs: d.config.timeoutMs, telegramApiUrl: d.config.telegramApiUrl, proxy: d.config.proxy, guard: this.guard });
    this.delivery = new AlertDelivery({
      repo: d.repo,
      send: (sink, events) => this.#sender.send(sink, events),
      open: (row) => this.open(row),
      log: d.log,
      pollMs: d.config.pollMs,
      retryBaseMs: d.config.retryBaseMs,
      giveUpMs: d.config.giveUpMs,
      leaseMs: d.config.timeoutMs + 5000,
      onSettled: (outcomes) => {
        for (const o of outcomes) d.onDelivery?.(o.state === 'pending' ? 'retry' : o.state);
      },
    });
  }

  get rules(): AlertRules {
    return this.#rules;
  }

  /** Rules changed through this instance's admin API: used at once (the others read them at their next check). */
  setRules(rules: AlertRules): void {
    this.#rules = rules;
  }

  start(): void {
    this.delivery.start();
    if (this.#timer) return;
    void this.check();
    this.#timer = setInterval(() => void this.check(), this.d.config.checkIntervalMs);
    this.#timer.unref();
  }

  /** Recorded events are waiting: deliver them soon. */
  wake(): void {
    this.#recorded = false;
    this.delivery.wake();
  }

  /** After a transaction that may have recorded events (a flush, a refresh) committed. */
  committed(): void {
    if (this.#recorded) this.wake();
  }

  /** Opens a sink's sealed target and secret. */
  open(row: SinkRow): OpenSink {
    const { cipher } = this.d;
    return {
      id: row.id,
      name: row.name,
      kind: row.kind,
      target: cipher.decrypt(row.target_ciphertext),
      secret: row.secret_ciphertext ? cipher.decrypt(row.secret_ciphertext) : null,
      chatId: row.chat_id,
    };
  }

  /** Sends a test message to a sink now, outside the outbox; says what the receiver answered. */
  async test(row: SinkRow): Promise<SendResult> {
    const event: AlertEvent = { id: 0, type: 'test', created_at: new Date().toISOString(), summary: `Test message for the sink “${row.name}”`, data: { sink: row.name } };
    return this.#sender.send(this.open(row), [event]);
  }

  /** In a write-behind flush's transaction: keys the gateway found invalid or exhausted. */
  async keyHealth(trx: Db, changes: readonly HealthChange[]): Promise<void> {
    if ((await this.d.repo.record(await healthEvents(trx, this.d.dialect, changes, 'gateway'), trx)) > 0) this.#recorded = true;
  }

  /** In a refresh's transaction, before its writes: key changes, the share of failures, usage drift. */
  async refreshed(trx: Db, run: RefreshRun): Promise<void> {
    const { repo, dialect } = this.d;
    const changes: HealthChange[] = run.writes.map((w) => (w.ok ? { id: w.id, status: w.status } : { id: w.id, status: w.status, reason: w.error }));
    const events: NewAlertEvent[] = await healthEvents(trx, dialect, changes, 'refresh');

    // What holds now, in one read: nothing is written unless something changes.
    const active = new Set(await repo.active(['refresh.failures', 'account.drift:'], trx));
    const rules = this.#rules;
    if (rules.refresh_failure_share !== null && run.total > 0) {
      // Checks that could not tell: a key Tavily refused (401, 432, 433) was told, and has its own event.
      const unknown = run.failures.filter((f) => f.status_code === null || ![401, 432, 433].includes(f.status_code));
      const failed = unknown.length;
      const share = failed / run.total;
      const data = { total: run.total, failed, share: Math.round(share * 1000) / 1000, threshold: rules.refresh_failure_share };
      if (share > rules.refresh_failure_share) {
        if (!active.has('refresh.failures') && (await repo.raise(['refresh.failures'], trx)).length > 0) {
          const examples = unknown.slice(0, 5).map((f) => ({ key_masked: f.key_masked, error: f.error }));
          events.push({ type: 'refresh.failures', summary: `A refresh failed for ${failed} of ${count(run.total, 'key')}`, data: { state: 'firing', ...data, examples } });
        }
      } else if (active.has('refresh.failures') && (await repo.clear(['refresh.failures'], trx)).length > 0) {
        events.push({ type: 'refresh.failures', summary: `A refresh succeeded again (${failed} of ${count(run.total, 'key')} failed)`, data: { state: 'resolved', ...data } });
      }
    }

    // Usage drift: fires per key (or account) when first found, quiet while it lasts, cleared
    // by a check that finds none.
    const driftName = (f: { id: number | null; account_id: number | null }) => (f.id !== null ? `account.drift:key:${f.id}` : `account.drift:account:${f.account_id}`);
    const findings = new Map(run.drift.map((f) => [driftName(f), f]));
    const newFindings = [...findings.keys()].filter((n) => !active.has(n));
    if (newFindings.length > 0) {
      const fresh = await repo.raise(newFindings, trx);
      if (fresh.length > 0) {
        const list = fresh.map((n) => findings.get(n)!).map((f) => ({ key_id: f.id, key_masked: f.key_masked, account_id: f.account_id, account: f.id === null ? `#${f.account_id}` : null, tavily: f.tavily, pool: f.pool, since: f.since, at: f.at }));
        events.push({ type: 'account.drift', summary: `Usage outside the pool on ${count(list.length, 'key or account', 'keys or accounts')}`, data: { findings: list } });
      }
    }
    const drifting = [...active].filter((n) => n.startsWith('account.drift:') && !findings.has(n));
    if (drifting.length > 0) {
      const quiet = new Set([
        ...run.writes.filter((w) => w.ok && w.drift === null).map((w) => `account.drift:key:${w.id}`),
        ...run.accountWrites.filter((a) => a.drift === null).map((a) => `account.drift:account:${a.id}`),
      ]);
      await repo.clear(drifting.filter((n) => quiet.has(n)), trx);
    }
    if ((await repo.record(events, trx)) > 0) this.#recorded = true;
  }

  /** Checks the pool's conditions; records what started or stopped holding. Returns the events recorded. */
  check(): Promise<number> {
    this.#checking ??= this.#check()
      .catch((err) => {
        this.d.log.error({ err }, 'alert check failed; the next check retries');
        return 0;
      })
      .finally(() => {
        this.#checking = null;
      });
    return this.#checking;
  }

  async #check(): Promise<number> {
    const { db, repo, pool, tokens } = this.d;
    const rules = await readRules(db);
    this.#rules = rules;
    const now = Date.now();
    const holds = new Map<string, NewAlertEvent>();
    const conditions = new Map<string, NewAlertEvent | null>();

    const counts = pool.counts(now);
    if (counts.total > 0) {
      // Credits: an absolute floor, or days left at the last 7 days' rate.
      const remaining = pool.creditsRemaining();
      const spent7d = rules.days_left_below !== null ? await this.d.logs.creditsSince(burnWindowStart(now)) : 0;
      const rate = perDay(spent7d);
      const left = daysLeft(remaining, spent7d);
      const low = rules.credits_below !== null && remaining < rules.credits_below;
      const soon = rules.days_left_below !== null && left !== null && left < rules.days_left_below;
      const data = { remaining, credits_below: rules.credits_below, days_left: left === null ? null : Math.round(left * 10) / 10, days_left_below: rules.days_left_below, per_day: Math.round(rate * 10) / 10 };
      if (low || soon) {
        const why = soon ? `about ${data.days_left} days left at ${data.per_day} credits a day` : `below ${rules.credits_below}`;
        holds.set('pool.credits_low', { type: 'pool.credits_low', summary: `The pool has ${remaining} credits left (${why})`, data: { state: 'firing', ...data } });
      }
      conditions.set('pool.credits_low', { type: 'pool.credits_low', summary: `The pool’s credits are sufficient again (${remaining} left)`, data: { state: 'resolved', ...data } });

      const serving = counts.available + counts.cooling;
      const keysData = { active: serving, threshold: rules.active_keys_below, total: counts.total, invalid: counts.invalid, exhausted: counts.exhausted, disabled: counts.disabled };
      if (rules.active_keys_below !== null && serving < rules.active_keys_below) {
        holds.set('pool.keys_low', { type: 'pool.keys_low', summary: `Only ${count(serving, 'key')} of ${counts.total} can serve (below ${rules.active_keys_below})`, data: { state: 'firing', ...keysData } });
      }
      conditions.set('pool.keys_low', { type: 'pool.keys_low', summary: `${count(serving, 'key')} can serve again`, data: { state: 'resolved', ...keysData } });
    }

    // Tokens: each threshold once a month; one event names the highest newly reached.
    const tokenNames = new Map<string, { token: { id: number; name: string; month: string; spent: number; budget: number }; pct: number }>();
    for (const t of tokens.all()) {
      tokens.rollMonth(t, now);
      if (t.budget === null || t.budget <= 0) continue;
      const used = (t.spent / t.budget) * 100;
      for (const pct of rules.token_budget_percents) {
        if (used >= pct) tokenNames.set(`token.budget:${t.id}:${t.month}:${pct}`, { token: { id: t.id, name: t.name, month: t.month, spent: t.spent, budget: t.budget }, pct });
      }
    }

    // The change feed of this instance.
    const bus = this.d.bus();
    if (bus) {
      const name = `instance.feed_lost:${bus.instanceId}`;
      const lost = bus.lostSince;
      const data = { instance: bus.instanceId, since: lost === null ? null : new Date(lost).toISOString(), after_s: rules.feed_lost_after_s };
      if (lost !== null && now - lost >= rules.feed_lost_after_s * 1000) {
        holds.set(name, { type: 'instance.feed_lost', summary: `Instance ${bus.instanceId} has not heard the other instances’ changes since ${data.since}`, data: { state: 'firing', ...data } });
      }
      conditions.set(name, { type: 'instance.feed_lost', summary: `Instance ${bus.instanceId} hears the other instances again`, data: { state: 'resolved', ...data } });
    }

    // Nothing is written unless something changed: the conditions that hold are read first.
    const active = new Set(await repo.active(['pool.', 'token.budget:', ...(bus ? [`instance.feed_lost:${bus.instanceId}`] : [])], db));
    const toRaise = [...holds.keys()].filter((n) => !active.has(n));
    const toClear = [...conditions.keys()].filter((n) => active.has(n) && !holds.has(n));
    const newTokens = [...tokenNames.keys()].filter((n) => !active.has(n));
    if (toRaise.length === 0 && toClear.length === 0 && newTokens.length === 0) return 0;

    const events = await db.transaction().execute(async (trx) => {
      const out: NewAlertEvent[] = [];
      for (const n of await repo.raise(toRaise, trx)) out.push(holds.get(n)!);
      for (const n of await repo.clear(toClear, trx)) {
        const e = conditions.get(n);
        if (e) out.push(e);
      }
      const highest = new Map<number, { token: { id: number; name: string; month: string; spent: number; budget: number }; pct: number }>();
      for (const n of await repo.raise(newTokens, trx)) {
        const x = tokenNames.get(n)!;
        const prev = highest.get(x.token.id);
        if (!prev || x.pct > prev.pct) highest.set(x.token.id, x);
      }
      for (const { token, pct } of highest.values()) {
        out.push({
          type: 'token.budget',
          summary: `Token “${token.name}” has spent ${pct}% of its monthly budget (${token.spent} of ${token.budget} credits in ${token.month})`,
          data: { token_id: token.id, token: token.name, percent: pct, spent: token.spent, budget: token.budget, month: token.month },
        });
      }
      await repo.record(out, trx);
      return out;
    });
    if (events.length > 0) this.wake();
    return events.length;
  }

  /** Deletes events recorded before `before`, and budget marks of past months. */
  async prune(before: string): Promise<number> {
    const month = new Date().toISOString().slice(0, 7);
    const old = (await this.d.repo.active('token.budget:')).filter((n) => (n.split(':')[2] ?? '') < month);
    await this.d.repo.clear(old);
    return this.d.repo.prune(before);
  }

  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#checking;
    await this.delivery.close();
    await this.#sender.close();
  }
}

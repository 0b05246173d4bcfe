import { randomBytes } from 'node:crypto';
import type { Static } from '@sinclair/typebox';
import type { Alerts } from '../alerts/alerts.js';
import { readRules, writeRules } from '../alerts/rules.js';
import { maskTarget } from '../alerts/sinks.js';
import type { Actor, AuditLog } from '../audit/audit.js';
import type { KeyCipher } from '../crypto.js';
import type { Db } from '../db/database.js';
import type { AlertRepository, SinkPatch, SinkRow } from '../db/repositories/alerts.js';
import { ApiError } from '../http/api-error.js';
import { ALERT_TYPES, type AlertType } from '../schemas/alert-events.js';
import { type AlertRules, type CreateSink, type EventObject, type PatchSink, SUBSCRIBABLE, type SinkView, type TestResultView } from '../schemas/alerts.js';

/** The event types a sink may take, with what they mean (the dashboard's choices). */
const TYPES = SUBSCRIBABLE.map((type) => ({ type, ...ALERT_TYPES[type] }));

const notFound = (id: number) => new ApiError(404, 'sink_not_found', `no alert sink with id ${id}`);
const newSecret = () => `whsec_${randomBytes(24).toString('base64url')}`;

function view(r: SinkRow): SinkView {
  return {
    id: r.id,
    name: r.name,
    kind: r.kind,
    target: r.target_masked,
    chat_id: r.chat_id,
    signed: r.secret_ciphertext !== null,
    events: r.events,
    enabled: r.disabled_at === null,
    created_at: r.created_at,
    updated_at: r.updated_at,
  };
}

/**
 * Alerts as the admin sees them: when they fire (the rules), where they go (the sinks, their
 * targets sealed like the keys), a test send, and the events with their deliveries. Each change
 * is one transaction with its audit row.
 */
export class AlertService {
  constructor(
    private readonly d: {
      db: Db;
      repo: AlertRepository;
      alerts: Alerts;
      cipher: KeyCipher;
      audit: AuditLog;
    },
  ) {}

  async rules(): Promise<{ rules: AlertRules; types: typeof TYPES }> {
    return { rules: await readRules(this.d.db), types: TYPES };
  }

  /** Changes when alerts fire (fields left out keep their value), then checks the conditions at once. */
  async setRules(actor: Actor, patch: Partial<AlertRules>): Promise<{ rules: AlertRules; types: typeof TYPES }> {
    const rules = { ...(await readRules(this.d.db)), ...patch };
    await this.d.db.transaction().execute(async (trx) => {
      await writeRules(trx, rules);
      await this.d.audit.record(actor, trx, 'alerts.rules', { ...patch });
    });
    this.d.alerts.setRules(rules);
    void this.d.alerts.check();
    return { rules, types: TYPES };
  }

  async sinks(): Promise<SinkView[]> {
    return (await this.d.repo.listSinks()).map(view);
  }

  /** Adds a sink; a webhook's signing secret is answered once. */
  async createSink(actor: Actor, b: Static<typeof CreateSink>): Promise<{ item: SinkView; secret?: string }> {
    let target: string;
    if (b.kind === 'telegram') {
      if (!b.bot_token) throw new ApiError(400, 'invalid_request', 'body.bot_token is required for a telegram sink (the token @BotFather gave)');
      if (!b.chat_id) throw new ApiError(400, 'invalid_request', 'body.chat_id is required for a telegram sink (the chat the bot writes to)');
      if (b.url !== undefined || b.secret !== undefined) throw new ApiError(400, 'invalid_request', 'a telegram sink takes bot_token and chat_id, not url or secret');
      target = b.bot_token;
    } else {
      if (!b.url) throw new ApiError(400, 'invalid_request', `body.url is required for a ${b.kind} sink`);
      if (b.bot_token !== undefined || b.chat_id !== undefined) throw new ApiError(400, 'invalid_request', `a ${b.kind} sink takes url, not bot_token or chat_id`);
      if (b.kind === 'slack' && b.secret !== undefined) throw new ApiError(400, 'invalid_request', 'a slack sink is not signed: its URL is the secret (leave out body.secret)');
      this.#checkDestination(b.url);
      target = b.url;
    }
    const secret = b.kind === 'webhook' ? (b.secret ?? newSecret()) : null;
    const row = await this.d.db.transaction().execute(async (trx) => {
      const made = await this.d.repo.createSink(
        {
          name: b.name.trim(),
          kind: b.kind,
          target_ciphertext: this.#seal(target),
          target_masked: maskTarget(b.kind, target),
          secret_ciphertext: secret ? this.#seal(secret) : null,
          chat_id: b.chat_id ?? null,
          events: b.events ?? null,
          disabled: b.enabled === false,
        },
        trx,
      );
      if (!made) throw new ApiError(409, 'sink_name_taken', `an alert sink named "${b.name.trim()}" exists already`);
      await this.d.audit.record(actor, trx, 'alerts.sink_create', { id: made.id, name: made.name, kind: made.kind, target: made.target_masked, events: made.events });
      return made;
    });
    return { item: view(row), ...(secret ? { secret } : {}) };
  }

  /** Changes a sink (a blank target keeps the stored one), or rotates a webhook's secret (answered once). */
  async updateSink(actor: Actor, id: number, b: Static<typeof PatchSink>): Promise<{ item: SinkView; secret?: string }> {
    const current = await this.d.repo.getSink(id);
    if (!current) throw notFound(id);
    const patch: SinkPatch = {};
    if (b.name !== undefined) patch.name = b.name.trim();
    if (b.events !== undefined) patch.events = b.events;
    if (b.enabled !== undefined) patch.disabled = !b.enabled;
    if (current.kind === 'telegram') {
      if (b.url !== undefined || b.rotate_secret) throw new ApiError(400, 'invalid_request', 'a telegram sink takes bot_token and chat_id, not url or rotate_secret');
      if (b.bot_token !== undefined) Object.assign(patch, { target_ciphertext: this.#seal(b.bot_token), target_masked: maskTarget('telegram', b.bot_token) });
      if (b.chat_id !== undefined) patch.chat_id = b.chat_id;
    } else {
      if (b.bot_token !== undefined || b.chat_id !== undefined) throw new ApiError(400, 'invalid_request', `a ${current.kind} sink takes url, not bot_token or chat_id`);
      if (b.rotate_secret && current.kind !== 'webhook') throw new ApiError(400, 'invalid_request', 'only a webhook sink has a signing secret');
      if (b.url !== undefined) this.#checkDestination(b.url);
      if (b.url !== undefined) Object.assign(patch, { target_ciphertext: this.#seal(b.url), target_masked: maskTarget(current.kind, b.url) });
    }
    const secret = b.rotate_secret ? newSecret() : null;
    if (secret) patch.secret_ciphertext = this.#seal(secret);
    const r = await this.d.db.transaction().execute(async (trx) => {
      const changed = await this.d.repo.updateSink(id, patch, trx);
      if (changed === 'not_found') throw notFound(id);
      if (changed === 'name_taken') throw new ApiError(409, 'sink_name_taken', `an alert sink named "${patch.name}" exists already`);
      await this.d.audit.record(actor, trx, 'alerts.sink_update', { id: changed.id, fields: Object.keys(b) });
      return changed;
    });
    return { item: view(r), ...(secret ? { secret } : {}) };
  }

  /** Removes a sink; its pending deliveries go with it. */
  async deleteSink(actor: Actor, id: number): Promise<void> {
    await this.d.db.transaction().execute(async (trx) => {
      if (!(await this.d.repo.deleteSink(id, trx))) throw notFound(id);
      await this.d.audit.record(actor, trx, 'alerts.sink_delete', { id });
    });
  }

  /** Sends a test message to a sink now, and says what it answered. */
  async testSink(id: number): Promise<TestResultView> {
    const row = await this.d.repo.getSink(id);
    if (!row) throw notFound(id);
    const t0 = performance.now();
    const r = await this.d.alerts.test(row);
    return { ok: r.ok, status: r.status, error: r.error, ms: Math.round(performance.now() - t0) };
  }

  /** Recent events, newest first, with each delivery's state and last error. */
  async events(q: { limit: number; before?: number; type?: AlertType }): Promise<{ items: Static<typeof EventObject>[]; next: number | null }> {
    const { events, next } = await this.d.repo.listEvents(q);
    return {
      items: events.map((e) => ({
        ...e,
        deliveries: e.deliveries.map((d) => ({ sink_id: d.sink_id, sink: d.sink_name, state: d.state, attempts: d.attempts, next_at: d.next_at, last_status: d.last_status, last_error: d.last_error, delivered_at: d.delivered_at })),
      })),
      next,
    };
  }

  /** A URL whose address the policy refuses is not saved (what needs DNS is checked on each send). */
  #checkDestination(url: string): void {
    const refused = this.d.alerts.guard.refusalOfUrl(url);
    if (refused) throw new ApiError(400, 'sink_target_refused', `body.url: ${refused}`);
  }

  #seal(text: string): string {
    return this.d.cipher.encrypt(text);
  }
}

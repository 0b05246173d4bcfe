import { randomBytes } from 'node:crypto';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { ALERT_TYPES, ALERT_TYPE_NAMES, type AlertType } from '../alerts/events.js';
import { readRules, writeRules } from '../alerts/rules.js';
import { AlertRules, CreateSink, EventObject, PatchSink, RulesResponse, SUBSCRIBABLE, SinkObject, type SinkView, TestResult } from '../alerts/schemas.js';
import { maskTarget } from '../alerts/sinks.js';
import type { SinkPatch, SinkRow } from '../db/repositories/alerts.js';
import { ApiError } from './errors.js';
import { Nullable, RowId, withErrors } from './schemas.js';

const IdParams = Type.Object({ id: RowId() });

const tags = ['alerts'];
/** The event types a sink may take, with what they mean (the dashboard's choices). */
const TYPES = SUBSCRIBABLE.map((type) => ({ type, ...ALERT_TYPES[type] }));

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

/** /alerts: the rules, the sinks (with a test), and the events with their deliveries. */
export const alertRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const ctx = app.ctx;
  const repo = ctx.alertsRepo;
  const notFound = (id: number) => new ApiError(404, 'sink_not_found', `no alert sink with id ${id}`);
  const seal = (s: string) => ctx.cipher.encrypt(s);

  app.get('/alerts/rules', { schema: { tags, summary: 'When alerts fire, and the event types', response: withErrors({ 200: RulesResponse }) } }, async () => ({
    rules: await readRules(ctx.database.db),
    types: TYPES,
  }));

  app.put(
    '/alerts/rules',
    { schema: { tags, summary: 'Change when alerts fire (fields left out keep their value)', body: Type.Partial(AlertRules, { additionalProperties: false, minProperties: 1 }), response: withErrors({ 200: RulesResponse }) } },
    async (req) => {
      const rules = { ...(await readRules(ctx.database.db)), ...req.body };
      await ctx.database.db.transaction().execute(async (trx) => {
        await writeRules(trx, rules);
        await ctx.audit.record(req, trx, 'alerts.rules', { ...req.body });
      });
      ctx.alerts.setRules(rules);
      req.log.info({ rules }, 'alert rules changed');
      void ctx.alerts.check();
      return { rules, types: TYPES };
    },
  );

  app.get('/alerts/sinks', { schema: { tags, summary: 'Where alerts are sent', response: withErrors({ 200: Type.Object({ items: Type.Array(SinkObject) }) }) } }, async () => ({
    items: (await repo.listSinks()).map(view),
  }));

  app.post(
    '/alerts/sinks',
    {
      schema: {
        tags,
        summary: 'Add a sink: a signed JSON webhook, a Slack-compatible webhook, or a Telegram bot',
        description: 'webhook and slack take `url`; telegram takes `bot_token` and `chat_id`. A webhook’s signing secret is answered once.',
        body: CreateSink,
        response: withErrors({ 201: Type.Object({ item: SinkObject, secret: Type.Optional(Type.String({ description: 'webhook: the signing secret, shown once' })) }) }),
      },
    },
    async (req, reply) => {
      const b = req.body;
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
        target = b.url;
      }
      const secret = b.kind === 'webhook' ? (b.secret ?? `whsec_${randomBytes(24).toString('base64url')}`) : null;
      const row = await ctx.database.db.transaction().execute(async (trx) => {
        const made = await repo.createSink(
          {
            name: b.name.trim(),
            kind: b.kind,
            target_ciphertext: seal(target),
            target_masked: maskTarget(b.kind, target),
            secret_ciphertext: secret ? seal(secret) : null,
            chat_id: b.chat_id ?? null,
            events: b.events ?? null,
            disabled: b.enabled === false,
          },
          trx,
        );
        if (!made) throw new ApiError(409, 'sink_name_taken', `an alert sink named "${b.name.trim()}" exists already`);
        await ctx.audit.record(req, trx, 'alerts.sink_create', { id: made.id, name: made.name, kind: made.kind, target: made.target_masked, events: made.events });
        return made;
      });
      req.log.info({ sink_id: row.id, kind: row.kind }, 'alert sink added');
      return reply.code(201).send({ item: view(row), ...(secret ? { secret } : {}) });
    },
  );

  app.patch(
    '/alerts/sinks/:id',
    {
      schema: {
        tags,
        summary: 'Change a sink: its name, target, events, or whether it is enabled; or rotate a webhook’s secret',
        params: IdParams,
        body: PatchSink,
        response: withErrors({ 200: Type.Object({ item: SinkObject, secret: Type.Optional(Type.String()) }) }),
      },
    },
    async (req) => {
      const b = req.body;
      const current = await repo.getSink(req.params.id);
      if (!current) throw notFound(req.params.id);
      const patch: SinkPatch = {};
      if (b.name !== undefined) patch.name = b.name.trim();
      if (b.events !== undefined) patch.events = b.events;
      if (b.enabled !== undefined) patch.disabled = !b.enabled;
      if (current.kind === 'telegram') {
        if (b.url !== undefined || b.rotate_secret) throw new ApiError(400, 'invalid_request', 'a telegram sink takes bot_token and chat_id, not url or rotate_secret');
        if (b.bot_token !== undefined) Object.assign(patch, { target_ciphertext: seal(b.bot_token), target_masked: maskTarget('telegram', b.bot_token) });
        if (b.chat_id !== undefined) patch.chat_id = b.chat_id;
      } else {
        if (b.bot_token !== undefined || b.chat_id !== undefined) throw new ApiError(400, 'invalid_request', `a ${current.kind} sink takes url, not bot_token or chat_id`);
        if (b.rotate_secret && current.kind !== 'webhook') throw new ApiError(400, 'invalid_request', 'only a webhook sink has a signing secret');
        if (b.url !== undefined) Object.assign(patch, { target_ciphertext: seal(b.url), target_masked: maskTarget(current.kind, b.url) });
      }
      const secret = b.rotate_secret ? `whsec_${randomBytes(24).toString('base64url')}` : null;
      if (secret) patch.secret_ciphertext = seal(secret);
      const r = await ctx.database.db.transaction().execute(async (trx) => {
        const changed = await repo.updateSink(req.params.id, patch, trx);
        if (changed === 'not_found') throw notFound(req.params.id);
        if (changed === 'name_taken') throw new ApiError(409, 'sink_name_taken', `an alert sink named "${patch.name}" exists already`);
        await ctx.audit.record(req, trx, 'alerts.sink_update', { id: changed.id, fields: Object.keys(b) });
        return changed;
      });
      req.log.info({ sink_id: r.id, fields: Object.keys(b) }, 'alert sink changed');
      return { item: view(r), ...(secret ? { secret } : {}) };
    },
  );

  app.delete(
    '/alerts/sinks/:id',
    { schema: { tags, summary: 'Remove a sink (its pending deliveries go with it)', params: IdParams, response: withErrors({ 200: Type.Object({ deleted: Type.Integer() }) }) } },
    async (req) => {
      await ctx.database.db.transaction().execute(async (trx) => {
        if (!(await repo.deleteSink(req.params.id, trx))) throw notFound(req.params.id);
        await ctx.audit.record(req, trx, 'alerts.sink_delete', { id: req.params.id });
      });
      req.log.info({ sink_id: req.params.id }, 'alert sink removed');
      return { deleted: req.params.id };
    },
  );

  app.post(
    '/alerts/sinks/:id/test',
    { schema: { tags, summary: 'Send a test message to a sink now, and say what it answered', params: IdParams, response: withErrors({ 200: TestResult }) } },
    async (req) => {
      const row = await repo.getSink(req.params.id);
      if (!row) throw notFound(req.params.id);
      const t0 = performance.now();
      const r = await ctx.alerts.test(row);
      return { ok: r.ok, status: r.status, error: r.error, ms: Math.round(performance.now() - t0) };
    },
  );

  app.get(
    '/alerts/events',
    {
      schema: {
        tags,
        summary: 'Recent alert events, newest first, with each delivery’s state and last error',
        querystring: Type.Object(
          {
            limit: Type.Integer({ minimum: 1, maximum: 500, default: 50 }),
            before: Type.Optional(RowId('events before this id (the `next` of the previous page)')),
            type: Type.Optional(Type.Unsafe<AlertType>({ type: 'string', enum: ALERT_TYPE_NAMES })),
          },
          { additionalProperties: false },
        ),
        response: withErrors({ 200: Type.Object({ items: Type.Array(EventObject), next: Nullable(Type.Integer()) }) }),
      },
    },
    async (req) => {
      const { events, next } = await repo.listEvents({ limit: req.query.limit, before: req.query.before, type: req.query.type });
      return {
        items: events.map((e) => ({ ...e, deliveries: e.deliveries.map((d) => ({ sink_id: d.sink_id, sink: d.sink_name, state: d.state, attempts: d.attempts, next_at: d.next_at, last_status: d.last_status, last_error: d.last_error, delivered_at: d.delivered_at })) })),
        next,
      };
    },
  );
};

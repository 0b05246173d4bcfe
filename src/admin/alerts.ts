import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { actorOf } from '../audit/audit.js';
import { ALERT_TYPE_NAMES, type AlertType } from '../schemas/alert-events.js';
import { AlertRules, CreateSink, EventObject, PatchSink, RulesResponse, SinkObject, TestResult } from '../schemas/alerts.js';
import { Nullable, RowId, withErrors } from '../schemas/keys.js';
import type { AlertService } from '../services/alerts.js';

const IdParams = Type.Object({ id: RowId() });

const tags = ['alerts'];

/** /alerts: the rules, the sinks (with a test), and the events with their deliveries. */
export const alertRoutes: FastifyPluginAsyncTypebox<{ alerts: AlertService }> = async (app, { alerts }) => {
  app.get('/alerts/rules', { schema: { tags, summary: 'When alerts fire, and the event types', response: withErrors({ 200: RulesResponse }) } }, async () => alerts.rules());

  app.put(
    '/alerts/rules',
    { schema: { tags, summary: 'Change when alerts fire (fields left out keep their value)', body: Type.Partial(AlertRules, { additionalProperties: false, minProperties: 1 }), response: withErrors({ 200: RulesResponse }) } },
    async (req) => {
      const r = await alerts.setRules(actorOf(req), req.body);
      req.log.info({ rules: r.rules }, 'alert rules changed');
      return r;
    },
  );

  app.get('/alerts/sinks', { schema: { tags, summary: 'Where alerts are sent', response: withErrors({ 200: Type.Object({ items: Type.Array(SinkObject) }) }) } }, async () => ({
    items: await alerts.sinks(),
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
      const made = await alerts.createSink(actorOf(req), req.body);
      req.log.info({ sink_id: made.item.id, kind: made.item.kind }, 'alert sink added');
      return reply.code(201).send(made);
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
      const changed = await alerts.updateSink(actorOf(req), req.params.id, req.body);
      req.log.info({ sink_id: changed.item.id, fields: Object.keys(req.body) }, 'alert sink changed');
      return changed;
    },
  );

  app.delete(
    '/alerts/sinks/:id',
    { schema: { tags, summary: 'Remove a sink (its pending deliveries go with it)', params: IdParams, response: withErrors({ 200: Type.Object({ deleted: Type.Integer() }) }) } },
    async (req) => {
      await alerts.deleteSink(actorOf(req), req.params.id);
      req.log.info({ sink_id: req.params.id }, 'alert sink removed');
      return { deleted: req.params.id };
    },
  );

  app.post(
    '/alerts/sinks/:id/test',
    { schema: { tags, summary: 'Send a test message to a sink now, and say what it answered', params: IdParams, response: withErrors({ 200: TestResult }) } },
    async (req) => alerts.testSink(req.params.id),
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
    async (req) => alerts.events({ limit: req.query.limit, before: req.query.before, type: req.query.type }),
  );
};

import { type Static, Type } from '@sinclair/typebox';
import { Nullable } from './keys.js';
import type { SinkKind } from '../db/schema.js';
import { ALERT_TYPE_NAMES, type AlertType } from './alert-events.js';

/**
 * The alerts' API shapes, by value (no $ref): the server's handlers and the dashboard share
 * their static types.
 */

/** When the pool's conditions raise an alert. Stored in the settings table; every instance reads it. */
export const AlertRules = Type.Object(
  {
    credits_below: Nullable(Type.Number({ minimum: 0, description: 'alert when the credits the pool can spend fall below this (null: off)' })),
    days_left_below: Nullable(Type.Number({ minimum: 0, description: 'alert when the credits will last fewer days than this at the last 7 days’ rate (null: off)' })),
    active_keys_below: Nullable(Type.Integer({ minimum: 1, description: 'alert when fewer keys than this can serve (null: off)' })),
    token_budget_percents: Type.Array(Type.Integer({ minimum: 1, maximum: 100 }), {
      maxItems: 10,
      uniqueItems: true,
      description: 'alert when a token reaches these percentages of its monthly budget, each once a month',
    }),
    refresh_failure_share: Nullable(Type.Number({ minimum: 0, maximum: 1, description: 'alert when more than this share of a refresh’s checks fail (null: off)' })),
    feed_lost_after_s: Type.Integer({ minimum: 10, maximum: 86_400, description: 'PostgreSQL: alert when an instance has not heard the others for this long' }),
  },
  { additionalProperties: false },
);
export type AlertRules = Static<typeof AlertRules>;

export const DEFAULT_RULES: AlertRules = {
  credits_below: null,
  days_left_below: 3,
  active_keys_below: 1,
  token_budget_percents: [80, 90, 100],
  refresh_failure_share: 0.5,
  feed_lost_after_s: 60,
};

/** Types a sink may subscribe to (a test is sent to the sink asked, whatever it listens to). */
export const SUBSCRIBABLE = ALERT_TYPE_NAMES.filter((t) => t !== 'test');
export const EventType = Type.Unsafe<AlertType>({ type: 'string', enum: SUBSCRIBABLE, description: 'an alert event type' });
export const SinkKindSchema = Type.Unsafe<SinkKind>({ type: 'string', enum: ['webhook', 'slack', 'telegram'] });

export const SinkObject = Type.Object({
  id: Type.Integer(),
  name: Type.String(),
  kind: SinkKindSchema,
  target: Type.String({ description: 'the URL or bot, masked: it is a credential' }),
  chat_id: Nullable(Type.String()),
  signed: Type.Boolean({ description: 'webhook: requests carry an HMAC-SHA256 signature' }),
  events: Type.Union([Type.Array(EventType), Type.Null()], { description: 'the event types sent to it; null: all' }),
  enabled: Type.Boolean(),
  created_at: Type.String({ format: 'date-time' }),
  updated_at: Type.String({ format: 'date-time' }),
});

export const Url = Type.String({ minLength: 1, maxLength: 2000, pattern: '^https?://\\S+$', description: 'an http(s) URL' });
export const BotToken = Type.String({ pattern: '^[0-9]{3,20}:[A-Za-z0-9_-]{20,100}$', description: 'a Telegram bot token such as 123456789:AAE…' });
export const ChatId = Type.String({ pattern: '^(-?[0-9]{1,20}|@[A-Za-z0-9_]{4,64})$', description: 'a Telegram chat id (a number) or @channelname' });
export const Secret = Type.String({ minLength: 16, maxLength: 200, description: 'the webhook signing secret (16+ characters); generated when left out' });
export const Events = Type.Union([Type.Array(EventType, { uniqueItems: true, maxItems: SUBSCRIBABLE.length }), Type.Null()]);

export const CreateSink = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 100, pattern: '\\S' }),
    kind: SinkKindSchema,
    url: Type.Optional(Url),
    bot_token: Type.Optional(BotToken),
    chat_id: Type.Optional(ChatId),
    secret: Type.Optional(Secret),
    events: Type.Optional(Events),
    enabled: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export const PatchSink = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 100, pattern: '\\S' })),
    url: Type.Optional(Url),
    bot_token: Type.Optional(BotToken),
    chat_id: Type.Optional(ChatId),
    rotate_secret: Type.Optional(Type.Boolean({ description: 'webhook: make a new signing secret (answered once)' })),
    events: Type.Optional(Events),
    enabled: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false, minProperties: 1 },
);

export const Delivery = Type.Object({
  sink_id: Type.Integer(),
  sink: Type.String(),
  state: Type.Unsafe<'pending' | 'delivered' | 'failed'>({ type: 'string', enum: ['pending', 'delivered', 'failed'] }),
  attempts: Type.Integer(),
  next_at: Type.String({ format: 'date-time', description: 'pending: when the next attempt is due' }),
  last_status: Nullable(Type.Integer()),
  last_error: Nullable(Type.String()),
  delivered_at: Nullable(Type.String({ format: 'date-time' })),
});
export const EventObject = Type.Object({
  id: Type.Integer(),
  type: Type.String(),
  created_at: Type.String({ format: 'date-time' }),
  summary: Type.String(),
  data: Type.Record(Type.String(), Type.Unknown()),
  deliveries: Type.Array(Delivery),
});
export const TestResult = Type.Object({
  ok: Type.Boolean(),
  status: Nullable(Type.Integer({ description: 'the receiver’s HTTP status' })),
  error: Nullable(Type.String()),
  ms: Type.Integer(),
});
export const RulesResponse = Type.Object({
  rules: AlertRules,
  types: Type.Array(Type.Object({ type: Type.String(), title: Type.String(), description: Type.String() })),
});

export type SinkView = Static<typeof SinkObject>;
export type EventView = Static<typeof EventObject>;
export type RulesView = Static<typeof RulesResponse>;
export type TestResultView = Static<typeof TestResult>;


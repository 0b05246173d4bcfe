import { createHmac } from 'node:crypto';
import { Agent, type Dispatcher, request } from 'undici';
import type { SinkKind } from '../db/schema.js';
import { type ProxySettings, viaProxy } from '../tavily/client.js';
import { parseRetryAfter } from '../tavily/errors.js';
import { type AlertEvent, describe } from '../schemas/alert-events.js';
import { DestinationGuard, DestinationRefused } from './destinations.js';

/** A sink with its secrets opened: what sending needs. */
export interface OpenSink {
  id: number;
  name: string;
  kind: SinkKind;
  /** The webhook URL (webhook, slack) or the bot token (telegram). */
  target: string;
  /** webhook: the signing secret. */
  secret: string | null;
  /** telegram: the chat. */
  chatId: string | null;
}

export interface SendResult {
  ok: boolean;
  status: number | null;
  error: string | null;
  /** Seconds the receiver asked us to wait (429 Retry-After, Telegram's retry_after). */
  retryAfterS: number | null;
}

/** Headers of a signed webhook. */
export const SIGNATURE_HEADER = 'x-tavily-pool-signature';
export const TIMESTAMP_HEADER = 'x-tavily-pool-timestamp';

/** `sha256=<hex>`: HMAC-SHA256 with the sink's secret over `<timestamp>.<body>`. */
export function signature(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/** The generic webhook's body: the events as stored, newest last. */
export function webhookBody(events: readonly AlertEvent[], sentAt = new Date()): string {
  return JSON.stringify({
    sent_at: sentAt.toISOString(),
    events: events.map((e) => ({ id: e.id, type: e.type, created_at: e.created_at, summary: e.summary, data: e.data })),
  });
}

/** Slack escapes only these three in message text (mrkdwn). */
const slackEscape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
/** Telegram's HTML parse mode: the same three, as entities. */
const htmlEscape = slackEscape;

/** Slack's messages are cut around 40,000 characters and read badly long before; Telegram's at 4,096. */
const SLACK_MAX = 3500;
const TELEGRAM_MAX = 4000;

function fit(blocks: string[], max: number, more: (n: number) => string): string {
  let out = '';
  for (let i = 0; i < blocks.length; i++) {
    const next = out ? `${out}\n${blocks[i]}` : blocks[i]!;
    if (next.length > max - 40) return `${out}\n${more(blocks.length - i)}`;
    out = next;
  }
  return out;
}

/** A Slack incoming-webhook message (`{"text": …}` in mrkdwn), also taken by Mattermost and Discord's /slack endpoint. */
export function slackMessage(events: readonly AlertEvent[]): { text: string } {
  const blocks: string[] = [];
  for (const [i, e] of events.entries()) {
    const { title, lines } = describe(e);
    if (i > 0) blocks.push('');
    blocks.push(`*tavily-pool: ${slackEscape(title)}*`);
    for (const l of lines) blocks.push(`• ${slackEscape(l)}`);
  }
  return { text: fit(blocks, SLACK_MAX, (n) => `_… ${n} more lines: see the dashboard’s Alerts page_`) };
}

/** A Telegram Bot API sendMessage body, in its HTML parse mode. */
export function telegramMessage(chatId: string, events: readonly AlertEvent[]): { chat_id: string; text: string; parse_mode: 'HTML'; disable_web_page_preview: true } {
  const blocks: string[] = [];
  for (const [i, e] of events.entries()) {
    const { title, lines } = describe(e);
    if (i > 0) blocks.push('');
    blocks.push(`<b>tavily-pool: ${htmlEscape(title)}</b>`);
    for (const l of lines) blocks.push(`• ${htmlEscape(l)}`);
  }
  return { chat_id: chatId, text: fit(blocks, TELEGRAM_MAX, (n) => `<i>… ${n} more lines: see the dashboard’s Alerts page</i>`), parse_mode: 'HTML', disable_web_page_preview: true };
}

/** The masked form of a sink's target: enough to recognise it, never enough to use it. */
export function maskTarget(kind: SinkKind, target: string): string {
  if (kind === 'telegram') {
    const id = target.split(':')[0] ?? '';
    return `bot ${id}:…${target.slice(-2)}`;
  }
  try {
    const u = new URL(target);
    const path = u.pathname.length > 12 ? `${u.pathname.slice(0, 8)}…` : u.pathname;
    return `${u.protocol}//${u.host}${path}`;
  } catch {
    return '…';
  }
}

export interface SenderOptions {
  timeoutMs: number;
  /** Telegram's API (https://api.telegram.org; tests point it at a local fake). */
  telegramApiUrl: string;
  proxy?: ProxySettings;
  /** Where webhook and Slack URLs may lead (Telegram's API is the operator's setting, not checked). */
  guard: DestinationGuard;
}

/**
 * What a receiver's non-2xx status means, in a fixed sentence: its body is never shown (nor
 * stored), so a sink cannot be used to read what a service answers.
 */
function statusMeaning(status: number): string {
  if (status >= 300 && status < 400) return 'a redirect, which is not followed: give the final URL';
  if (status === 401 || status === 403) return 'refused: check the URL (its secret part) and the receiver’s settings';
  if (status === 404 || status === 410) return 'no such hook at this URL: check it, or make the hook again';
  if (status === 413) return 'the message was too large for the receiver';
  if (status === 429) return 'too many messages: retried later';
  if (status >= 400 && status < 500) return 'the receiver did not accept the message';
  return 'the receiver failed: retried later';
}

/** Sends messages to sinks: one HTTP call per message, with a deadline, the answer read and bounded. */
export class SinkSender {
  /** Webhooks and Slack: connections only to addresses the guard allows. */
  readonly #guarded: Dispatcher;
  /** Telegram's API. */
  readonly #plain: Dispatcher;
  readonly #proxied: boolean;

  constructor(private readonly o: SenderOptions) {
    const base = { keepAliveTimeout: 30_000, connect: { timeout: o.timeoutMs } };
    this.#plain = viaProxy(o.proxy, base, (opts) => new Agent(opts));
    this.#proxied = Boolean(o.proxy && (o.proxy.httpProxy || o.proxy.httpsProxy));
    // Through a proxy the proxy resolves the name: it is resolved and checked before each send.
    // Directly, each address is checked as the socket connects, so a name cannot resolve to an
    // allowed address when checked and to a refused one when used.
    this.#guarded = this.#proxied || !o.guard.active ? this.#plain : new Agent({ ...base, connect: { ...base.connect, lookup: o.guard.lookup } });
  }

  async send(sink: OpenSink, events: readonly AlertEvent[]): Promise<SendResult> {
    let url: string;
    let body: string;
    let dispatcher = this.#guarded;
    const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'tavily-pool-alerts' };
    switch (sink.kind) {
      case 'webhook': {
        url = sink.target;
        body = webhookBody(events);
        const ts = String(Math.floor(Date.now() / 1000));
        headers[TIMESTAMP_HEADER] = ts;
        if (sink.secret) headers[SIGNATURE_HEADER] = signature(sink.secret, ts, body);
        break;
      }
      case 'slack':
        url = sink.target;
        body = JSON.stringify(slackMessage(events));
        break;
      case 'telegram':
        url = `${this.o.telegramApiUrl.replace(/\/+$/, '')}/bot${sink.target}/sendMessage`;
        body = JSON.stringify(telegramMessage(sink.chatId ?? '', events));
        dispatcher = this.#plain;
        break;
    }
    if (sink.kind !== 'telegram') {
      const refused = this.#proxied ? await this.o.guard.refusalOfResolved(url) : this.o.guard.refusalOfUrl(url);
      if (refused) return { ok: false, status: null, error: `not sent: ${redact(refused, sink)}`, retryAfterS: null };
    }
    try {
      const res = await request(url, {
        method: 'POST',
        headers,
        body,
        dispatcher,
        headersTimeout: this.o.timeoutMs,
        bodyTimeout: this.o.timeoutMs,
        signal: AbortSignal.timeout(this.o.timeoutMs),
      });
      const text = await readBounded(res.body, 16 * 1024);
      const status = res.statusCode;
      let retryAfterS = parseRetryAfter(res.headers['retry-after']) ?? null;
      if (sink.kind === 'telegram') {
        // Telegram answers {"ok": true, …} or {"ok": false, "description", "parameters": {"retry_after"}}.
        const j = parseJson(text) as { ok?: unknown; description?: unknown; parameters?: { retry_after?: unknown } } | null;
        if (typeof j?.parameters?.retry_after === 'number') retryAfterS = j.parameters.retry_after;
        if (status >= 200 && status < 300 && j?.ok === true) return { ok: true, status, error: null, retryAfterS: null };
        // Telegram's own explanation ("chat not found") is shown: its API is the operator's setting.
        const why = typeof j?.description === 'string' ? j.description.slice(0, 200) : statusMeaning(status);
        return { ok: false, status, error: `Telegram answered ${status}: ${redact(why, sink)}`, retryAfterS };
      }
      if (status >= 200 && status < 300) return { ok: true, status, error: null, retryAfterS: null };
      return { ok: false, status, error: `the receiver answered ${status}: ${statusMeaning(status)}`, retryAfterS };
    } catch (err) {
      if (err instanceof DestinationRefused) return { ok: false, status: null, error: `not sent: ${redact(err.message, sink)}`, retryAfterS: null };
      const e = err as { name?: string; code?: string; message?: string };
      const why = e.name === 'TimeoutError' || e.code === 'UND_ERR_HEADERS_TIMEOUT' || e.code === 'UND_ERR_BODY_TIMEOUT' ? `no answer within ${this.o.timeoutMs} ms` : (e.code ?? e.message ?? String(err));
      return { ok: false, status: null, error: `could not reach the receiver: ${redact(why, sink)}`, retryAfterS: null };
    }
  }

  async close(): Promise<void> {
    await Promise.all([this.#plain.close(), this.#guarded === this.#plain ? undefined : this.#guarded.close()]);
  }
}

/** A bot token or a webhook's secret path never reaches a stored error. */
function redact(text: string, sink: OpenSink): string {
  let out = text;
  if (sink.target) out = out.split(sink.target).join('…');
  return out;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

async function readBounded(body: AsyncIterable<Buffer> & { destroy?: () => void }, max: number): Promise<string> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > max) {
      body.destroy?.();
      break;
    }
    parts.push(chunk);
  }
  return Buffer.concat(parts).toString('utf8');
}

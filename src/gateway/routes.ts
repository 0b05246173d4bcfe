import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { type TSchema, Type } from '@sinclair/typebox';
import { EventEmitter } from 'node:events';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AppContext } from '../context.js';
import { bearerToken, secretsEqual } from '../crypto.js';
import { describeError } from '../http-errors.js';
import type { PoolKey } from '../pool/pool.js';
import { UpstreamError, parseRetryAfter } from '../tavily/errors.js';
import { type UpstreamAnswer, upstreamMessage } from '../tavily/client.js';
import { count } from '../text.js';
import { type Endpoint, chargeableCredits, estimateCredits } from './credits.js';
import type { TokenState } from './tokens.js';

type Json = Record<string, unknown>;

/** Tavily's error envelope, so that SDKs show the message. */
export const TavilyError = Type.Object({ detail: Type.Object({ error: Type.String() }) }, { $id: 'TavilyError' });
const AnyObject = Type.Object({}, { additionalProperties: true });

const ERRORS = { 400: Type.Ref('TavilyError'), 401: Type.Ref('TavilyError'), 403: Type.Ref('TavilyError'), 404: Type.Ref('TavilyError'), 413: Type.Ref('TavilyError'), 429: Type.Ref('TavilyError'), 432: Type.Ref('TavilyError'), 433: Type.Ref('TavilyError'), 500: Type.Ref('TavilyError'), 502: Type.Ref('TavilyError'), 503: Type.Ref('TavilyError') };

/** Request bodies: the fields the gateway relies on are checked; the rest passes to Tavily as sent. */
const common = {
  api_key: Type.Optional(Type.String({ description: 'older clients send the token here; the header is preferred' })),
  include_usage: Type.Optional(Type.Boolean()),
};
const bodies: Record<Exclude<Endpoint, 'research.get'>, TSchema> = {
  search: Type.Object({ query: Type.String({ minLength: 1 }), ...common }, { additionalProperties: true }),
  extract: Type.Object({ urls: Type.Union([Type.String(), Type.Array(Type.String(), { minItems: 1 })]), ...common }, { additionalProperties: true }),
  crawl: Type.Object({ url: Type.String({ minLength: 1 }), ...common }, { additionalProperties: true }),
  map: Type.Object({ url: Type.String({ minLength: 1 }), ...common }, { additionalProperties: true }),
  research: Type.Object({ input: Type.String({ minLength: 1 }), stream: Type.Optional(Type.Boolean()), ...common }, { additionalProperties: true }),
};

/** Upstream time limits per endpoint (null: none, for event streams). */
const TIMEOUT_MS: Record<Endpoint | 'research.stream', number | null> = {
  search: 60_000,
  extract: 60_000,
  crawl: 150_000,
  map: 150_000,
  research: 60_000,
  'research.get': 60_000,
  'research.stream': null,
};

/** Headers the SDKs send that Tavily may use; everything else stays at the gateway. */
const FORWARDED_HEADERS = ['x-client-source', 'x-project-id', 'x-tavily-orgid', 'x-session-id', 'x-human-id', 'x-client-name'];

/** From this share of its monthly budget on, a token's spend is flushed at once. */
const NEAR_BUDGET = 0.9;

class GatewayError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
    readonly retryAfterS?: number,
    /** Keys tried before giving up. */
    readonly attempts = 0,
    /** Close the connection after answering (an unauthenticated client). */
    readonly close = false,
  ) {
    super(message);
  }
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The client token, when the Authorization header named one (set before the body is read). */
    clientToken?: TokenState;
  }
}

function tavilyError(reply: FastifyReply, status: number, message: string) {
  return reply.code(status).type('application/json').send(JSON.stringify({ detail: { error: message } }));
}

/** The client token: the Bearer header, or `api_key` in the body (or query) as older clients send it. */
function presentedToken(req: FastifyRequest, fields: { api_key?: unknown } | null): string | null {
  const bearer = bearerToken(req.headers.authorization);
  if (bearer) return bearer;
  return typeof fields?.api_key === 'string' && fields.api_key !== '' ? fields.api_key : null;
}

function forwardHeaders(req: FastifyRequest, json: boolean): Record<string, string> {
  const h: Record<string, string> = json ? { 'content-type': 'application/json', accept: 'application/json' } : { accept: 'application/json' };
  for (const name of FORWARDED_HEADERS) {
    const v = req.headers[name];
    if (typeof v === 'string') h[name] = v;
  }
  return h;
}

/**
 * Cancels the upstream call when the client goes away before its answer is complete. An
 * EventEmitter with an `aborted` flag, which undici accepts as a signal: an AbortController
 * per request cost ~3% of the gateway's CPU at saturation.
 */
class Cancellation extends EventEmitter {
  aborted = false;
  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.emit('abort');
  }
}

function cancelOnDisconnect(reply: FastifyReply): Cancellation {
  const c = new Cancellation();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) c.abort();
  });
  return c;
}

interface Attempted {
  res: UpstreamAnswer;
  /** A 2xx answer's JSON object (null for the request's own 4xx, and for a passed-through stream). */
  data: Json | null;
  key: PoolKey;
  attempts: number;
  latencyMs: number;
}

function jsonObject(text: string): Json | null {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : null;
  } catch {
    return null;
  }
}

/**
 * Sends the request with one key after another until one answers: 401 marks the key invalid,
 * 432/433 exhausted, 429 rests it for Retry-After; 5xx, a network error, a timeout, an answer
 * that breaks off or is too large, and a 2xx that is not a JSON object just move on. Anything
 * else (400, 403, 404, …) is the request's own answer and goes back.
 */
async function tryKeys(
  ctx: AppContext,
  endpoint: Endpoint,
  send: (key: PoolKey) => Promise<UpstreamAnswer>,
): Promise<Attempted> {
  const { pool, writeBehind, config, log } = ctx;
  const tried = new Set<number>();
  const failures: string[] = [];
  for (let attempt = 1; attempt <= config.maxAttempts; attempt++) {
    const key = pool.pick(tried);
    if (!key) break;
    tried.add(key.id);
    const t0 = performance.now();
    let res: UpstreamAnswer;
    try {
      res = await send(key);
    } catch (err) {
      if (!(err instanceof UpstreamError)) throw err;
      failures.push(`${key.masked}: ${err.message}`);
      log.warn({ key_id: key.id, endpoint, kind: err.kind }, `upstream failure, trying another key: ${err.message}`);
      continue;
    }
    const status = res.status;
    if (res.stream) return { res, data: null, key, attempts: attempt, latencyMs: performance.now() - t0 };
    if (status < 400) {
      const data = jsonObject(res.text);
      if (data) return { res, data, key, attempts: attempt, latencyMs: performance.now() - t0 };
      // A proxy's HTML page, a truncated document: not Tavily's answer. The key is not at fault.
      failures.push(`${key.masked}: ${status} answer is not JSON`);
      log.warn({ key_id: key.id, endpoint, status, content_type: res.headers['content-type'] }, 'upstream answered with something that is not JSON; trying another key');
      continue;
    }
    if (status < 500 && ![401, 429, 432, 433].includes(status)) {
      return { res, data: null, key, attempts: attempt, latencyMs: performance.now() - t0 };
    }
    const message = upstreamMessage(res.text);
    failures.push(`${key.masked}: ${status} ${message}`);
    if (status === 401) {
      pool.setHealth(key, 'invalid');
      writeBehind.keyHealth(key.id, 'invalid', `invalid key (401: ${message})`);
      log.warn({ key_id: key.id, endpoint }, 'key rejected by Tavily (401): marked invalid');
    } else if (status === 432 || status === 433) {
      pool.setHealth(key, 'exhausted');
      writeBehind.keyHealth(key.id, 'exhausted', `credits exhausted (${status}: ${message})`);
      log.warn({ key_id: key.id, endpoint, status }, 'key out of credits: marked exhausted');
    } else if (status === 429) {
      const wait = parseRetryAfter(res.headers['retry-after']) ?? 60;
      pool.coolDown(key, wait);
      writeBehind.keyCooldown(key.id, key.coolUntil);
      log.warn({ key_id: key.id, endpoint, retry_after_s: wait }, 'key rate limited by Tavily: cooling down');
    }
  }
  const c = pool.counts();
  const why =
    failures.length > 0
      ? `every key tried failed (${failures.join('; ')})`
      : `no key is available: ${count(c.total, 'key')}, ${c.invalid} invalid, ${c.exhausted} exhausted, ${c.disabled} disabled, ${c.cooling} cooling down after a rate limit`;
  throw new GatewayError(503, `tavily-pool could not serve this request: ${why}.`, undefined, tried.size);
}

export const gatewayRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const ctx = app.ctx;
  const { tokens, pool, writeBehind, research, tavily } = ctx;

  app.setErrorHandler((err, req, reply) => {
    if (err instanceof GatewayError) {
      if (err.retryAfterS !== undefined) reply.header('retry-after', String(err.retryAfterS));
      if (err.close) reply.header('connection', 'close');
      return tavilyError(reply, err.statusCode, err.message);
    }
    const p = describeError(err);
    if (p.statusCode >= 500) req.log.error({ err }, 'gateway request failed');
    return tavilyError(reply, p.statusCode, p.message);
  });

  /** Records a finished request and charges its credits to the key and the token (in memory, then write-behind). */
  const account = (token: TokenState, key: PoolKey | null, endpoint: Endpoint, status: number, attempts: number, latencyMs: number | null, credits: number, requestId: string | null, error: string | null) => {
    const ts = new Date().toISOString();
    if (credits > 0) {
      if (key) pool.deduct(key, credits);
      tokens.charge(token, credits);
      // Near its budget, a token's spend is sent to the other instances at once, not at the
      // next tick: together they overshoot by little more than what is in flight.
      if (token.budget !== null && token.spent >= token.budget * NEAR_BUDGET) writeBehind.soon();
    }
    writeBehind.record(
      { ts, token_id: token.id, key_id: key?.id ?? null, endpoint, status, attempts, latency_ms: latencyMs === null ? null : Math.round(latencyMs * 10) / 10, credits, request_id: requestId, error },
      { keyId: key?.id ?? null, tokenId: token.id, month: token.month, credits },
    );
  };

  /** Why a presented credential is not a client token, in words a user can act on. */
  const refusal = (presented: string | null): string => {
    if (presented === null) return 'tavily-pool: no client token: send Authorization: Bearer <client token> (create one in the dashboard, or with POST /api/v1/admin/tokens).';
    if (secretsEqual(presented, ctx.adminToken)) return 'tavily-pool: that is the admin token, which only opens /api/v1/admin: use a client token here.';
    if (presented.startsWith('tvly-')) return 'tavily-pool: that is a Tavily API key: the gateway holds the Tavily keys itself, so send a client token instead.';
    const revoked = tokens.revokedAt(presented);
    if (revoked) return `tavily-pool: this client token was revoked on ${revoked.slice(0, 10)}.`;
    return 'tavily-pool: unknown client token: check it, or create one in the dashboard.';
  };

  const unauthorized = (presented: string | null) => new GatewayError(401, refusal(presented), undefined, 0, true);

  /** The calling token; a Tavily-shaped 401 saying what is wrong when it is missing or not a client token. */
  const authenticate = (req: FastifyRequest, fields: { api_key?: unknown } | null): TokenState => {
    if (req.clientToken) return req.clientToken;
    const presented = presentedToken(req, fields);
    const token = presented ? tokens.authenticate(presented) : null;
    if (!token) throw unauthorized(presented);
    return token;
  };

  app.decorateRequest('clientToken', undefined);
  // A request whose Authorization header names no client token is answered at once, before
  // its body is read, and its connection closed: a client that is not one cannot hold a
  // socket open by trickling a body. (A token sent as api_key in the body is read with it.)
  app.addHook('onRequest', (req, _reply, done) => {
    const bearer = bearerToken(req.headers.authorization);
    if (bearer === null) return done();
    const token = tokens.authenticate(bearer);
    if (!token) return done(unauthorized(bearer));
    req.clientToken = token;
    done();
  });

  /** The calling token, admitted under its RPM limit and budget (a refusal is logged too). */
  const admit = (req: FastifyRequest, fields: { api_key?: unknown } | null, endpoint: Endpoint): TokenState => {
    const token = authenticate(req, fields);
    const a = tokens.admit(token);
    if (!a.ok) {
      // Counted, and logged as one row per token, endpoint and status per window: a client
      // hammering past its limit must not write a row per refusal.
      writeBehind.refusal({ tokenId: token.id, endpoint, status: a.status, error: a.message });
      throw new GatewayError(a.status, a.message, a.retryAfterS);
    }
    return token;
  };

  /**
   * Sends Tavily's JSON answer on, with usage hidden unless the client asked for it. Billing:
   * `full` counts Tavily's `usage` figure or else the published cost; `reported` only a figure
   * Tavily reports; `none` nothing (a research poll after the one that billed it).
   * `beforeSend` sees a successful answer's request_id before the client does.
   */
  const finishJson = (
    reply: FastifyReply,
    token: TokenState,
    endpoint: Endpoint,
    request: Json,
    askedUsage: boolean,
    r: Attempted,
    billing: 'full' | 'reported' | 'none',
    beforeSend?: (requestId: string | null) => void,
  ) => {
    const { status, text } = r.res;
    const data = r.data;
    if (status >= 400 || !data) {
      account(token, r.key, endpoint, status, r.attempts, r.latencyMs, 0, null, upstreamMessage(text));
      return reply.code(status).type(String(r.res.headers['content-type'] ?? 'application/json')).send(text);
    }
    const charge = chargeableCredits(endpoint, request, data, billing);
    if (charge.rejected !== undefined) {
      ctx.log.warn(
        { key_id: r.key.id, endpoint, reported: String(charge.rejected).slice(0, 40), counted: charge.credits },
        'Tavily reported a credit figure outside the published range; counting the published cost instead',
      );
    }
    let out = text;
    if (!askedUsage && 'usage' in data) {
      delete data.usage;
      out = JSON.stringify(data);
    }
    const requestId = typeof data.request_id === 'string' ? data.request_id : null;
    account(token, r.key, endpoint, status, r.attempts, r.latencyMs, charge.credits, requestId, null);
    beforeSend?.(requestId);
    return reply.code(status).type('application/json').send(out);
  };

  const post = (endpoint: Exclude<Endpoint, 'research.get'>) =>
    app.post(
      `/${endpoint}`,
      {
        logLevel: 'warn',
        schema: {
          tags: ['gateway'],
          summary: `Tavily /${endpoint} through the pool`,
          body: bodies[endpoint],
          response: { 200: AnyObject, ...(endpoint === 'research' ? { 201: AnyObject } : {}), ...ERRORS },
        },
      },
      async (req, reply) => {
        const body = req.body as Json;
        const token = admit(req, body, endpoint);
        const askedUsage = body.include_usage === true;
        const { api_key: _dropped, ...rest } = body;
        const upstreamBody = JSON.stringify({ ...rest, include_usage: true });
        const stream = endpoint === 'research' && body.stream === true;
        const ac = cancelOnDisconnect(reply);
        const headers = forwardHeaders(req, true);
        let r: Attempted;
        try {
          r = await tryKeys(ctx, endpoint, (key) =>
            tavily.forward({ method: 'POST', path: `/${endpoint}`, key: key.plain, headers, body: upstreamBody, timeoutMs: TIMEOUT_MS[stream ? 'research.stream' : endpoint], stream, signal: ac }),
          );
        } catch (err) {
          if (ac.aborted) return reply; // the client left: nothing to answer
          if (err instanceof GatewayError) account(token, null, endpoint, err.statusCode, err.attempts, null, 0, null, err.message);
          throw err;
        }
        const events = r.res.stream;
        if (events) {
          // Pass the event stream through chunk by chunk; bill the published minimum.
          const credits = estimateCredits('research', body, {});
          const t0 = performance.now();
          events.once('close', () => account(token, r.key, 'research', 200, r.attempts, r.latencyMs + (performance.now() - t0), credits, null, ac.aborted ? 'client disconnected' : null));
          reply.raw.setHeader('x-accel-buffering', 'no');
          return reply.code(200).header('cache-control', 'no-cache').type(String(r.res.headers['content-type'] ?? 'text/event-stream')).send(events);
        }
        if (endpoint !== 'research') return finishJson(reply, token, endpoint, body, askedUsage, r, 'full');
        // Research is billed when it completes (on the poll), not when it is created; its owner
        // is recorded before the client can poll.
        return finishJson(reply, token, endpoint, body, askedUsage, r, 'reported', (requestId) => {
          if (requestId) research.remember(requestId, r.key.id, token.id);
        });
      },
    );
  for (const e of ['search', 'extract', 'crawl', 'map', 'research'] as const) post(e);

  app.get(
    '/research/:request_id',
    {
      logLevel: 'warn',
      schema: {
        tags: ['gateway'],
        summary: 'Poll a research task, through the key that created it',
        // Tavily's request ids are UUIDs: visible ASCII only, so nothing odd reaches the database.
        params: Type.Object({ request_id: Type.String({ minLength: 1, maxLength: 200, pattern: '^[\\x21-\\x7e]+$', description: 'a request_id as Tavily returned it (visible ASCII characters)' }) }),
        querystring: Type.Object({ include_usage: Type.Optional(Type.Boolean()), api_key: Type.Optional(Type.String()) }, { additionalProperties: true }),
        response: { 200: AnyObject, 202: AnyObject, ...ERRORS },
      },
    },
    async (req, reply) => {
      const token = admit(req, req.query, 'research.get');
      const id = req.params.request_id;
      const task = await research.lookup(id);
      // A task is visible only to the token that created it: to any other it does not exist.
      const key = task && task.tokenId === token.id ? pool.get(task.keyId) : undefined;
      if (!task || !key) throw new GatewayError(404, 'Research task not found.');
      const ac = cancelOnDisconnect(reply);
      const t0 = performance.now();
      let res: UpstreamAnswer;
      try {
        res = await tavily.forward({ method: 'GET', path: `/research/${encodeURIComponent(id)}?include_usage=true`, key: key.plain, headers: forwardHeaders(req, false), timeoutMs: TIMEOUT_MS['research.get'], signal: ac });
      } catch (err) {
        if (ac.aborted) return reply;
        if (!(err instanceof UpstreamError)) throw err;
        account(token, key, 'research.get', 503, 1, null, 0, id, err.message);
        throw new GatewayError(503, `tavily-pool could not reach Tavily for this research task: ${err.message}.`);
      }
      const data = res.status < 400 ? jsonObject(res.text) : null;
      const latencyMs = performance.now() - t0;
      if (res.status < 400 && !data) {
        // Only the key that created the task can poll it: there is no other key to try.
        const message = 'Tavily’s answer to the research poll is not JSON';
        account(token, key, 'research.get', 502, 1, latencyMs, 0, id, message);
        throw new GatewayError(502, `tavily-pool: ${message}; poll again later.`);
      }
      const attempted: Attempted = { res, data, key, attempts: 1, latencyMs };
      // Research is billed once, on the first poll that finds it done; later polls count nothing.
      const first = res.status === 200 && research.charge(id, task);
      return finishJson(reply, token, 'research.get', {}, req.query.include_usage === true, attempted, first ? 'full' : 'none');
    },
  );

  app.get(
    '/usage',
    {
      logLevel: 'warn',
      schema: {
        tags: ['gateway'],
        summary: 'The calling token’s own usage, in the shape of Tavily’s /usage',
        querystring: Type.Object({ api_key: Type.Optional(Type.String()) }, { additionalProperties: true }),
        response: { 200: AnyObject, ...ERRORS },
      },
    },
    async (req) => {
      const token = authenticate(req, req.query);
      tokens.rollMonth(token);
      const byEndpoint = await ctx.logs.tokenSpendByEndpoint(token.id, token.month);
      const counts = {
        search_usage: byEndpoint.search ?? 0,
        extract_usage: byEndpoint.extract ?? 0,
        crawl_usage: byEndpoint.crawl ?? 0,
        map_usage: byEndpoint.map ?? 0,
        research_usage: (byEndpoint.research ?? 0) + (byEndpoint['research.get'] ?? 0),
      };
      return {
        key: { usage: token.spent, limit: token.budget, ...counts },
        account: { current_plan: 'tavily-pool', plan_usage: token.spent, plan_limit: token.budget, paygo_usage: 0, paygo_limit: null, ...counts },
      };
    },
  );
};


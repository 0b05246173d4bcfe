import { EventEmitter } from 'node:events';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { secretsEqual } from '../crypto.js';
import type { Metrics } from '../metrics.js';
import { scopeRefusal } from './scopes.js';
import type { BudgetLedger, Hold, Reservation } from './budget.js';
import { canonicalBody } from './fields.js';
import type { Failover, LogRepository } from '../db/repositories/logs.js';
import type { CacheOutcome, Door } from '../db/schema.js';
import { type AnswerCache, type SharedAnswer, cacheKey, withUsage } from './cache.js';
import type { Outbox } from '../pool/outbox.js';
import type { KeyStates } from '../pool/key-states.js';
import type { KeyPool, PoolKey } from '../pool/pool.js';
import { type CancelSignal, type TavilyClient, type UpstreamAnswer, upstreamMessage } from '../tavily/client.js';
import { verdictOf } from '../tavily/classify.js';
import { UpstreamError, parseRetryAfter } from '../tavily/errors.js';
import { count } from '../text.js';
import { chargeableCredits } from './credits.js';
import { ENDPOINTS, type EndpointName, type EndpointSpec, usageCounters } from './endpoints.js';
import type { ResearchRegistry, Task } from './research.js';
import type { TokenRegistry, TokenState } from './tokens.js';

type Json = Record<string, unknown>;

/** How many recent requests the gateway remembers the key of (feedback names them). */
const RECENT_REQUESTS = 50_000;
/** A request not remembered (served by another instance, say) is looked for in the log this far back. */
const FEEDBACK_LOOKBACK_MS = 10 * 60_000;

/**
 * The gateway refusing or failing a request, with the status a door answers it with (a REST
 * route in Tavily's error envelope, the MCP endpoint as a tool error).
 */
export class GatewayError extends Error {
  readonly retryAfterS?: number;
  /** Keys tried before giving up. */
  readonly attempts: number;
  /** Close the connection after answering (a client without a valid token). */
  readonly close: boolean;
  /** The keys tried that failed, and how. */
  readonly failovers: readonly Failover[];

  constructor(
    readonly statusCode: number,
    message: string,
    o: { retryAfterS?: number; attempts?: number; close?: boolean; failovers?: readonly Failover[] } = {},
  ) {
    super(message);
    this.retryAfterS = o.retryAfterS;
    this.attempts = o.attempts ?? 0;
    this.close = o.close ?? false;
    this.failovers = o.failovers ?? [];
  }
}

/**
 * Cancels the upstream call when the client goes away before its answer is complete. An
 * EventEmitter with an `aborted` flag, which undici accepts as a signal: an AbortController
 * per request cost ~3% of the gateway's CPU at saturation.
 */
export class Cancellation extends EventEmitter {
  aborted = false;
  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.emit('abort');
  }
}

/** One request through the gateway, from whichever door it came. */
export interface Call {
  token: TokenState;
  endpoint: EndpointName;
  /**
   * The request's JSON body without the client's token (POST); for a research poll, only
   * `include_usage`. `include_usage: true` keeps Tavily's usage figure in the answer. The core
   * puts it in canonical form (fields.ts) before any check: what is checked is what is sent.
   */
  body: Json;
  /** The research task polled (`research.get`). */
  requestId?: string;
  /** Headers the client sent that Tavily may use (X-Client-Source, …). */
  headers: Record<string, string>;
  signal: CancelSignal;
  /** The door the request came through (REST when not said): its log row says so. */
  via?: Door;
  /** The client's address (as the server trusts it: TRUSTED_PROXIES), for a token limited to networks. */
  remote?: string | null;
  /**
   * A follow-up of a call that was admitted (the MCP research tool's polls of the task it
   * created): admitted again on every poll (the token still valid, its networks, scopes and
   * budget), but not counted against its RPM allowance.
   */
  followUp?: boolean;
  /** `bypass`: the client asked for Tavily's answer, not a stored one (X-Tavily-Pool-Cache: bypass). */
  cache?: 'bypass';
}

/** What the gateway answers: Tavily's answer (JSON or passed on as it came), or its event stream. */
export type Outcome =
  | {
      kind: 'answer';
      status: number;
      contentType: string;
      /** The body to send (usage removed unless asked for). */
      text: string;
      /** A 2xx answer's JSON object; null for the request's own 4xx. */
      data: Json | null;
      /** What the answer cache did, when the token has one (the REST door says so in X-Tavily-Pool-Cache). */
      cache?: CacheOutcome;
    }
  | { kind: 'stream'; contentType: string; stream: Readable }
  /** The client went away: nothing to answer. */
  | { kind: 'cancelled' };

/** One finished request, as it is accounted and logged. */
interface RequestRecord {
  via: Door;
  token: TokenState;
  key: PoolKey | null;
  endpoint: EndpointName;
  status: number;
  attempts: number;
  latencyMs: number | null;
  credits: number;
  requestId: string | null;
  error: string | null;
  /** The keys tried before the one that answered (or all of them, when none did). */
  failovers?: readonly Failover[];
  /** The reservation this answer settles (released, and `credits` charged instead). */
  hold?: Hold | null;
  /** What the answer cache did (null or absent: no cache for this request), and the credits it saved. */
  cache?: CacheOutcome | null;
  saved?: number;
}

/** This request's place in the answer cache: where its answer is stored, and who waits for it. */
interface CacheUse {
  store: AnswerCache;
  key: string;
  ttlMs: number;
  outcome: CacheOutcome;
  /** Identical requests wait for this one's answer (null: another leads, or none may join a bypass). */
  lead: ((answer: SharedAnswer | null) => void) | null;
}

/** Time spent waiting for Tavily during one call, over all its attempts. */
interface Clock {
  upstreamMs: number;
}

interface Attempted {
  res: UpstreamAnswer;
  /** A 2xx answer's JSON object (null for the request's own 4xx, and for a passed-through stream). */
  data: Json | null;
  key: PoolKey;
  attempts: number;
  latencyMs: number;
  /** The keys tried before this one, and how each failed. */
  failovers?: readonly Failover[];
}

export interface GatewayDeps {
  config: Pick<Config, 'maxAttempts' | 'failoverBudgetMs'>;
  log: Logger;
  pool: KeyPool;
  keyStates: KeyStates;
  tokens: TokenRegistry;
  /** Holds each call's most possible cost against its token's budget until the answer settles it. */
  budget: BudgetLedger;
  outbox: Outbox;
  research: ResearchRegistry;
  tavily: TavilyClient;
  logs: LogRepository;
  adminToken: string;
  /** Prometheus counters; null when METRICS_ENABLED=false. */
  metrics?: Metrics | null;
  /** The answer cache (null: CACHE_MAX_BYTES=0), and the TTL of MCP calls by tokens that set none. */
  cache?: { answers: AnswerCache; mcpTtlS: number } | null;
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
 * The gateway, free of HTTP: admits a client token's request (RPM, budget), chooses keys,
 * forwards, fails over, counts the credits against the key and the token, records research
 * owners and queues the log row. The REST routes and the MCP endpoint are doors onto it.
 */
export class GatewayCore {
  constructor(private readonly d: GatewayDeps) {}

  /** Why a presented credential is not a client token, in words a user can act on. */
  refusal(presented: string | null): string {
    if (presented === null) return 'tavily-pool: no client token: send Authorization: Bearer <client token> (create one in the dashboard, or with POST /api/v1/admin/tokens).';
    if (secretsEqual(presented, this.d.adminToken)) return 'tavily-pool: that is the admin token, which only opens /api/v1/admin: use a client token here.';
    if (presented.startsWith('tvly-')) return 'tavily-pool: that is a Tavily API key: the gateway holds the Tavily keys itself, so send a client token instead.';
    const revoked = this.d.tokens.revokedAt(presented);
    if (revoked) return `tavily-pool: this client token was revoked on ${revoked.slice(0, 10)}.`;
    const expired = this.d.tokens.expiredAt(presented);
    if (expired) return `tavily-pool: this client token expired at ${expired}.`;
    return 'tavily-pool: unknown client token: check it, or create one in the dashboard.';
  }

  /** The client token presented, or a 401 saying what is wrong with it. */
  authenticate(presented: string | null): TokenState {
    const token = presented ? this.d.tokens.authenticate(presented) : null;
    if (!token) throw new GatewayError(401, this.refusal(presented), { close: true });
    return token;
  }

  /**
   * Lets the call in, or refuses it, in this order, so that a refused call spends nothing:
   * the token as it stands now (a call that began earlier is admitted on it again: revoked or
   * expired, 401), its scopes and caps (403), its budget, which must cover the most the call
   * can cost (432), and its RPM limit (429). Admitted, the call holds that most against the
   * budget until its answer settles it (the hold is returned; null when nothing is held).
   * Refusals are counted, and logged as one row per token, endpoint and status per window: a
   * client hammering past its limit must not write a row per refusal.
   */
  #admit(c: Call, spec: EndpointSpec, covered: Hold | null): Hold | null | Promise<Hold | null> {
    const live = this.d.tokens.current(c.token);
    if (typeof live === 'string') return this.#refuse(c, 401, live);
    c.token = live;
    const most = spec.reservedBy === 'task' ? 0 : spec.max(c.body);
    const why = scopeRefusal(live.scopes, c.endpoint, c.body, c.remote, most);
    if (why) return this.#refuse(c, 403, why);
    const r = this.d.budget.reserve(live, most, covered);
    return r instanceof Promise ? r.then((x) => this.#admitted(c, x)) : this.#admitted(c, r);
  }

  #admitted(c: Call, r: Reservation): Hold | null {
    if (!r.ok) return this.#refuse(c, 432, r.message);
    if (c.followUp) return r.hold;
    const a = this.d.tokens.admit(c.token);
    if (a.ok) return r.hold;
    this.d.budget.release(r.hold);
    return this.#refuse(c, a.status, a.message, a.retryAfterS);
  }

  /**
   * An answer a door gave without calling the core (the body failed validation, the token was
   * refused): counted with the core's own, so that every answer is in the request metrics.
   */
  answeredAtDoor(endpoint: EndpointName, via: 'rest' | 'mcp', status: number, token: TokenState | null): void {
    this.d.metrics?.request(endpoint, via, status, 0, token?.name ?? null);
  }

  #refuse(c: Call, status: number, message: string, retryAfterS?: number): never {
    const via = c.via ?? 'rest';
    this.d.outbox.refusal({ tokenId: c.token.id, endpoint: c.endpoint, status, error: message, via });
    this.d.metrics?.request(c.endpoint, via, status, 0, c.token.name);
    throw new GatewayError(status, message, { retryAfterS });
  }

  /** Serves one request: admitted, sent with one key after another, accounted and logged. */
  async call(c: Call): Promise<Outcome> {
    const metrics = this.d.metrics;
    if (!metrics) return this.#serve(c, null);
    // The time the gateway adds: the whole call less the time spent waiting for Tavily.
    const clock: Clock = { upstreamMs: 0 };
    const t0 = performance.now();
    const out = await this.#serve(c, clock);
    if (out.kind === 'answer') metrics.added(c.endpoint, Math.max(0, performance.now() - t0 - clock.upstreamMs) / 1000);
    return out;
  }

  /** A send that adds the time it waits for Tavily to the clock. */
  #timed(clock: Clock | null, send: (key: PoolKey) => Promise<UpstreamAnswer>): (key: PoolKey) => Promise<UpstreamAnswer> {
    if (!clock) return send;
    return async (key) => {
      const t = performance.now();
      try {
        return await send(key);
      } finally {
        clock.upstreamMs += performance.now() - t;
      }
    };
  }

  async #serve(c: Call, clock: Clock | null): Promise<Outcome> {
    const spec = ENDPOINTS[c.endpoint];
    const shaped = canonicalBody(spec.fields, c.body);
    if ('error' in shaped) this.#refuse(c, 400, `tavily-pool: ${shaped.error}.`);
    else c.body = shaped.body;
    if (c.endpoint === 'research.get') return this.#poll(c, spec, clock);
    const admitted = this.#admit(c, spec, null);
    const hold = admitted instanceof Promise ? await admitted : admitted;
    // Whether the hold went on with the answer (a stream's end, a research task's polls).
    let passedOn = false;
    const cache = this.#cacheFor(c, spec);
    try {
      if (c.endpoint === 'feedback') return await this.#feedback(c, clock);
      if (cache) {
        const served = await this.#fromCache(c, cache, hold);
        if (served) return served;
      }
      const upstreamBody = JSON.stringify({ ...c.body, include_usage: true });
      const stream = c.endpoint === 'research' && c.body.stream === true;
      const headers = { 'content-type': 'application/json', accept: 'application/json', ...c.headers };
      let r: Attempted;
      try {
        r = await this.#tryKeys(
          c.endpoint,
          this.#timed(clock, (key) =>
            this.d.tavily.forward({ method: 'POST', path: spec.route, key: key.plain, headers, body: upstreamBody, timeoutMs: stream ? null : spec.timeoutMs, stream, signal: c.signal }),
          ),
        );
      } catch (err) {
        if (c.signal.aborted) return { kind: 'cancelled' };
        if (err instanceof GatewayError) this.#account({ via: c.via ?? 'rest', token: c.token, key: null, endpoint: c.endpoint, status: err.statusCode, attempts: err.attempts, latencyMs: null, credits: 0, requestId: null, error: err.message, failovers: err.failovers });
        throw err;
      }
      const events = r.res.stream;
      if (events) {
        // The event stream passes through chunk by chunk; it is billed the published minimum,
        // and holds its reservation until it ends.
        const credits = spec.estimate(c.body, {});
        const t0 = performance.now();
        passedOn = true;
        events.once('close', () =>
          this.#account({ via: c.via ?? 'rest', token: c.token, key: r.key, endpoint: c.endpoint, status: 200, attempts: r.attempts, latencyMs: r.latencyMs + (performance.now() - t0), credits, requestId: null, error: c.signal.aborted ? 'client disconnected' : null, failovers: r.failovers, hold }),
        );
        return { kind: 'stream', contentType: String(r.res.headers['content-type'] ?? 'text/event-stream'), stream: events };
      }
      if (spec.billing === 'full') return this.#finish(c, r, 'full', hold, undefined, cache);
      // Research is billed when it completes (on the poll), not when it is created: its owner
      // is recorded before the client can poll, and its reservation stays with the task until
      // a poll bills it.
      return this.#finish(c, r, 'reported', null, (requestId) => {
        if (!requestId) return;
        this.d.research.remember(requestId, r.key.id, c.token.id, hold);
        passedOn = true;
      });
    } finally {
      if (!passedOn) this.d.budget.release(hold);
      // No answer to share (a failure, a refusal, a client gone): who waited calls Tavily itself.
      cache?.lead?.(null);
    }
  }

  /** The answer cache's part in this call: null when the token has none for this endpoint and door. */
  #cacheFor(c: Call, spec: EndpointSpec): CacheUse | null {
    const cache = this.d.cache;
    if (!cache || !spec.cacheable) return null;
    const ttlS = c.token.cacheTtlS ?? (c.via === 'mcp' ? cache.mcpTtlS : 0);
    if (ttlS <= 0) return null;
    return { store: cache.answers, key: cacheKey(c.endpoint, c.body), ttlMs: ttlS * 1000, outcome: c.cache === 'bypass' ? 'bypass' : 'miss', lead: null };
  }

  /**
   * A stored answer within the token's TTL (a hit), or the answer of an identical request in
   * flight (joined): free, logged with the credits it saved. Null when Tavily must be asked:
   * then this call leads, and identical ones arriving meanwhile wait for its answer.
   */
  async #fromCache(c: Call, u: CacheUse, hold: Hold | null): Promise<Outcome | null> {
    const t0 = performance.now();
    if (u.outcome !== 'bypass') {
      let found: SharedAnswer | null = u.store.get(u.key, u.ttlMs);
      let outcome: CacheOutcome = 'hit';
      if (!found) {
        const inflight = u.store.inflight(u.key);
        if (inflight) {
          found = await inflight;
          outcome = 'joined';
          if (c.signal.aborted) return { kind: 'cancelled' };
        }
      }
      if (found) {
        const answer = found;
        this.#account({ via: c.via ?? 'rest', token: c.token, key: null, endpoint: c.endpoint, status: 200, attempts: 0, latencyMs: performance.now() - t0, credits: 0, requestId: answer.requestId, error: null, hold, cache: outcome, saved: answer.credits });
        let data: Json | null | undefined;
        return {
          kind: 'answer',
          status: 200,
          contentType: 'application/json',
          text: withUsage(answer.text, c.body.include_usage === true),
          // Parsed only for a door that reads it (MCP formats it; REST sends the text).
          get data() {
            return (data ??= jsonObject(answer.text));
          },
          cache: outcome,
        };
      }
    }
    if (!u.store.inflight(u.key)) u.lead = u.store.lead(u.key);
    return null;
  }

  /**
   * A research poll, through the key that created the task, for the token that created it.
   * Admitted like any call, its cost covered by the task's reservation; when its token may no
   * longer poll (revoked, expired), the task's reservation ends and nothing more is billed.
   */
  async #poll(c: Call, spec: EndpointSpec, clock: Clock | null): Promise<Outcome> {
    const { research, pool } = this.d;
    const id = c.requestId!;
    const task = await research.lookup(id);
    // A task is visible only to the token that created it: to any other it does not exist.
    const own: Task | null = task && task.tokenId === c.token.id ? task : null;
    try {
      const admitted = this.#admit(c, spec, own?.hold ?? null);
      if (admitted instanceof Promise) await admitted;
    } catch (err) {
      if (own && err instanceof GatewayError && (err.statusCode === 401 || c.followUp)) research.abandon(id, own);
      throw err;
    }
    const key = own ? pool.get(own.keyId) : undefined;
    if (!own || !key) throw new GatewayError(404, 'Research task not found.');
    const headers = { accept: 'application/json', ...c.headers };
    const path = `/research/${encodeURIComponent(id)}?include_usage=true`;
    const r = await this.#withKey(
      c,
      key,
      'the key that created the task',
      this.#timed(clock, (k) => this.d.tavily.forward({ method: 'GET', path, key: k.plain, headers, timeoutMs: spec.timeoutMs, signal: c.signal })),
    );
    if (!r) return { kind: 'cancelled' };
    // Research is billed once, on the first poll that finds it done (settling the task's
    // reservation); later polls count nothing.
    const billed = r.res.status === 200 ? research.charge(id, own) : false;
    return this.#finish(c, r, billed === false ? 'none' : 'full', billed || null);
  }

  /**
   * Feedback on a request, sent with the key that served it (Tavily files it under that key),
   * free of charge. A request the gateway does not know (or another token's) goes with any key.
   */
  async #feedback(c: Call, clock: Clock | null): Promise<Outcome> {
    const requestId = typeof c.body.request_id === 'string' ? c.body.request_id : null;
    const owner = requestId ? await this.#servedBy(c.token.id, requestId) : null;
    const body = JSON.stringify(c.body);
    const headers = { 'content-type': 'application/json', accept: 'application/json', ...c.headers };
    const send = this.#timed(clock, (k: PoolKey) => this.d.tavily.forward({ method: 'POST', path: ENDPOINTS.feedback.route, key: k.plain, headers, body, timeoutMs: ENDPOINTS.feedback.timeoutMs, signal: c.signal }));
    let r: Attempted | null;
    try {
      r = owner ? await this.#withKey(c, owner, 'the key that served the request', send) : await this.#tryKeys('feedback', send);
    } catch (err) {
      if (c.signal.aborted) return { kind: 'cancelled' };
      if (err instanceof GatewayError && !owner) this.#account({ via: c.via ?? 'rest', token: c.token, key: null, endpoint: 'feedback', status: err.statusCode, attempts: err.attempts, latencyMs: null, credits: 0, requestId, error: err.message });
      throw err;
    }
    if (!r) return { kind: 'cancelled' };
    return this.#finish(c, r, 'none', null);
  }

  /** The key that served the token's request with this request_id: from memory, or from the last minutes of the log. */
  async #servedBy(tokenId: number, requestId: string): Promise<PoolKey | null> {
    const recent = this.#recent.get(requestId);
    const since = new Date(Date.now() - FEEDBACK_LOOKBACK_MS).toISOString();
    const keyId = recent ? (recent.tokenId === tokenId ? recent.keyId : null) : await this.d.logs.keyForRequest(tokenId, requestId, since);
    return keyId === null ? null : (this.d.pool.get(keyId) ?? null);
  }

  /** request_id → the key and token of a recent request (feedback names them), the last RECENT_REQUESTS. */
  readonly #recent = new Map<string, { keyId: number; tokenId: number }>();

  /**
   * Sends a request that only one key may serve (a research task's poll, feedback on a
   * request), retrying it on that key after a failure (both are idempotent), up to
   * MAX_ATTEMPTS times. Null when the client went away.
   */
  async #withKey(c: Call, key: PoolKey, which: string, send: (key: PoolKey) => Promise<UpstreamAnswer>): Promise<Attempted | null> {
    let failure = '';
    for (let attempt = 1; attempt <= this.d.config.maxAttempts; attempt++) {
      const t0 = performance.now();
      let res: UpstreamAnswer;
      try {
        res = await send(key);
      } catch (err) {
        if (c.signal.aborted) return null;
        if (!(err instanceof UpstreamError)) throw err;
        failure = err.message;
        this.d.keyStates.failed(key, err.message, c.endpoint);
        continue;
      }
      const verdict = verdictOf(res.status);
      const data = verdict === 'served' ? jsonObject(res.text) : null;
      if (verdict === 'failure' || (verdict === 'served' && !data)) {
        failure = verdict === 'failure' ? `${res.status} ${upstreamMessage(res.text)}` : `${res.status} answer is not JSON`;
        this.d.keyStates.failed(key, failure, c.endpoint);
        continue;
      }
      this.d.keyStates.answered(key);
      return { res, data, key, attempts: attempt, latencyMs: performance.now() - t0 };
    }
    const attempts = this.d.config.maxAttempts;
    this.#account({ via: c.via ?? 'rest', token: c.token, key, endpoint: c.endpoint, status: 503, attempts, latencyMs: null, credits: 0, requestId: c.requestId ?? null, error: failure });
    throw new GatewayError(503, `tavily-pool could not get an answer from Tavily (${count(attempts, 'try', 'tries')} with ${which}): ${failure}; try again later.`);
  }

  /**
   * Sends the request with one key after another until one serves it. Answers that say
   * something about the key and cost nothing move on at once and do not count against
   * MAX_ATTEMPTS: 401 marks the key invalid, 432/433 exhausted, 429 rests it for Retry-After.
   * Costly failures (5xx, a network error, a timeout, an answer that breaks off or is too
   * large, a 2xx that is not a JSON object) rest the key a little longer each time and count:
   * after MAX_ATTEMPTS of them the request gives up. So does it when no untried key is left,
   * or when FAILOVER_BUDGET_MS has passed. Anything else (400, 403, 404, …) is the request's
   * own answer and goes back.
   */
  async #tryKeys(endpoint: EndpointName, send: (key: PoolKey) => Promise<UpstreamAnswer>): Promise<Attempted> {
    const { pool, keyStates, config, log } = this.d;
    const started = performance.now();
    const tried = new Set<number>();
    const failures: Failover[] = [];
    const failed = (key: PoolKey, status: number | null, error: string) => failures.push({ key_id: key.id, status, error: error.slice(0, 300) });
    let costly = 0;
    while (costly < config.maxAttempts && performance.now() - started < config.failoverBudgetMs) {
      // When every key rests after failures (Tavily itself failing), the first to end its rest is tried.
      const key = pool.pick(tried) ?? pool.pickResting(tried);
      if (!key) break;
      tried.add(key.id);
      const attempts = tried.size;
      const t0 = performance.now();
      let res: UpstreamAnswer;
      try {
        res = await send(key);
      } catch (err) {
        if (!(err instanceof UpstreamError)) throw err;
        failed(key, null, err.message);
        costly++;
        keyStates.failed(key, err.message, endpoint);
        continue;
      }
      if (res.stream) {
        keyStates.answered(key);
        return { res, data: null, key, attempts, latencyMs: performance.now() - t0, failovers: failures };
      }
      const verdict = verdictOf(res.status);
      if (verdict === 'served') {
        const data = jsonObject(res.text);
        if (data) {
          keyStates.answered(key);
          return { res, data, key, attempts, latencyMs: performance.now() - t0, failovers: failures };
        }
        // A proxy's HTML page, a truncated document: not Tavily's answer.
        failed(key, res.status, 'answer is not JSON');
        costly++;
        keyStates.failed(key, `${res.status} answer is not JSON (${String(res.headers['content-type'] ?? 'no content type')})`, endpoint);
        continue;
      }
      if (verdict === 'request') {
        keyStates.answered(key);
        return { res, data: null, key, attempts, latencyMs: performance.now() - t0, failovers: failures };
      }
      const message = upstreamMessage(res.text);
      failed(key, res.status, message);
      if (verdict === 'invalid') keyStates.invalid(key, message, endpoint);
      else if (verdict === 'exhausted') keyStates.exhausted(key, res.status, message, endpoint);
      else if (verdict === 'rate_limited') keyStates.rateLimited(key, parseRetryAfter(res.headers['retry-after']) ?? 60, endpoint);
      else {
        costly++;
        keyStates.failed(key, `${res.status} ${message}`, endpoint);
      }
    }
    if (costly > 0 || tried.size > 0) log.warn({ endpoint, keys_tried: tried.size, failures: costly }, 'no key served the request');
    const c = pool.counts();
    const why =
      failures.length > 0
        ? `every key tried failed (${failures.map((f) => `${pool.get(f.key_id)?.masked ?? `key ${f.key_id}`}: ${f.status === null ? '' : `${f.status} `}${f.error}`).join('; ')})`
        : `no key is available: ${count(c.total, 'key')}, ${c.invalid} invalid, ${c.exhausted} exhausted, ${c.disabled} disabled, ${c.cooling} resting (rate limited, or failing)`;
    throw new GatewayError(503, `tavily-pool could not serve this request: ${why}.`, { attempts: tried.size, failovers: failures });
  }

  /**
   * Tavily's JSON answer, with usage hidden unless the client asked for it, accounted. Billing:
   * `full` counts Tavily's `usage` figure or else the published cost; `reported` only a
   * figure Tavily reports; `none` nothing (a research poll after the one that billed it).
   * `beforeAnswer` sees a successful answer's request_id before the client does.
   */
  #finish(c: Call, r: Attempted, billing: 'full' | 'reported' | 'none', hold: Hold | null, beforeAnswer?: (requestId: string | null) => void, cache?: CacheUse | null): Outcome {
    const { status, text } = r.res;
    const data = r.data;
    if (status >= 400 || !data) {
      this.#account({ via: c.via ?? 'rest', token: c.token, key: r.key, endpoint: c.endpoint, status, attempts: r.attempts, latencyMs: r.latencyMs, credits: 0, requestId: null, error: upstreamMessage(text), failovers: r.failovers, hold, cache: cache?.outcome ?? null });
      return { kind: 'answer', status, contentType: String(r.res.headers['content-type'] ?? 'application/json'), text, data: null };
    }
    const charge = chargeableCredits(c.endpoint, c.body, data, billing);
    if (charge.rejected !== undefined) {
      this.d.log.warn(
        { key_id: r.key.id, endpoint: c.endpoint, reported: String(charge.rejected).slice(0, 40), counted: charge.credits },
        'Tavily reported a credit figure outside the published range; counting the published cost instead',
      );
    }
    let out = text;
    if (c.body.include_usage !== true && 'usage' in data) {
      delete data.usage;
      out = JSON.stringify(data);
    }
    const requestId = typeof data.request_id === 'string' ? data.request_id : null;
    this.#account({ via: c.via ?? 'rest', token: c.token, key: r.key, endpoint: c.endpoint, status, attempts: r.attempts, latencyMs: r.latencyMs, credits: charge.credits, requestId, error: null, failovers: r.failovers, hold, cache: cache?.outcome ?? null });
    beforeAnswer?.(requestId);
    if (cache) {
      // Stored without usage (a later hit reports its own, 0), shared with who waited.
      let stored = out;
      if ('usage' in data) {
        const { usage: _u, ...rest } = data;
        stored = JSON.stringify(rest);
      }
      const answer: SharedAnswer = { text: stored, credits: charge.credits, requestId, storedAt: Date.now() };
      cache.store.set(cache.key, answer);
      cache.lead?.(answer);
    }
    return { kind: 'answer', status, contentType: 'application/json', text: out, data, ...(cache ? { cache: cache.outcome } : {}) };
  }

  /**
   * Charges a finished request's credits to its key and token (in memory, then write-behind),
   * settling its reservation in the same step, and queues its log row.
   */
  #account(r: RequestRecord): void {
    const { budget, outbox, keyStates, metrics } = this.d;
    const ts = new Date().toISOString();
    if (metrics) {
      metrics.request(r.endpoint, r.via, r.status, r.credits, r.token.name);
      if (r.key && r.latencyMs !== null && r.status < 400) metrics.upstream(r.endpoint, r.latencyMs / 1000);
      if (r.cache) metrics.cache(r.endpoint, r.cache, r.saved ?? 0);
    }
    if (r.key) keyStates.spend(r.key, r.credits, ts);
    if (r.key && r.requestId && r.endpoint !== 'feedback') {
      this.#recent.set(r.requestId, { keyId: r.key.id, tokenId: r.token.id });
      if (this.#recent.size > RECENT_REQUESTS) this.#recent.delete(this.#recent.keys().next().value!);
    }
    budget.settle(r.token, r.hold ?? null, r.credits);
    outbox.tokenSpend(r.token.id, r.token.month, r.credits, ts);
    outbox.record({
      ts,
      token_id: r.token.id,
      key_id: r.key?.id ?? null,
      endpoint: r.endpoint,
      status: r.status,
      attempts: r.attempts,
      latency_ms: r.latencyMs === null ? null : Math.round(r.latencyMs * 10) / 10,
      credits: r.credits,
      request_id: r.requestId,
      error: r.error,
      via: r.via,
      failovers: r.failovers,
      cache: r.cache ?? null,
      credits_saved: r.saved ?? 0,
    });
  }

  /** The token's own usage, in the shape of Tavily's `/usage`. */
  async usage(token: TokenState): Promise<Json> {
    this.d.tokens.rollMonth(token);
    const counts = usageCounters(await this.d.logs.tokenSpendByEndpoint(token.id, token.month));
    return {
      key: { usage: token.spent, limit: token.budget, ...counts },
      account: { current_plan: 'tavily-pool', plan_usage: token.spent, plan_limit: token.budget, paygo_usage: 0, paygo_limit: null, ...counts },
    };
  }
}

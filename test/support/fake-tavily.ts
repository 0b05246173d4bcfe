/**
 * A fake of Tavily's API for tests and benchmarks: a real HTTP server on 127.0.0.1,
 * built from ../shared/tavily-api.md. Each key behaves as set with `setKey`, or else by
 * its name: a key containing
 *   `invalid` → 401, `ratelimit` → 429 (Retry-After 60), `plan432` → 432, `paygo433` → 433,
 *   `error5xx` → 500, `hang` → never answers, `malformed` → a 200 that is not JSON,
 *   `spent` → 200 with every credit used; any other key → 200 with figures derived from the key.
 * The same names drive POST /search, /extract, /crawl, /map, /research and GET /research/:id,
 * where `spent` → 432 and `flaky` → 500 on every other call. These endpoints bill credits
 * per key as Tavily does (recorded in `stats.creditsByKey`) and return `usage` only when
 * `include_usage` is true. A query over 400 characters → 400; a crawl/map URL containing
 * `unsupported` → 403; research belongs to the key that created it.
 * A key can also misbehave as a broken proxy or a dying server does (`setKey`,
 * `setRequestBehaviour`): `reset`, `truncate`, `short`, `trickle`, `huge`, `html`, `credits`
 * (see KeyBehaviour).
 * Accounts (`addAccount`): keys that share one plan's credits, with a billing cycle that starts
 * on the account's own day of the month (by the fake's clock, `setNow`); a key of an account
 * reports live figures from /usage, and is refused (432, or 433 past pay-as-you-go) when its
 * own limit or its account has no room. `spendOutside` spends from a key as another tool would,
 * without the gateway.
 * Run it alone: `tsx test/support/fake-tavily.ts` (PORT, LATENCY_MS from the environment).
 */
import { createHash, randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';

export interface UsageBody {
  key: {
    usage: number;
    limit: number | null;
    search_usage?: number;
    extract_usage?: number;
    crawl_usage?: number;
    map_usage?: number;
    research_usage?: number;
  };
  account: {
    current_plan: string;
    plan_usage: number;
    plan_limit: number | null;
    paygo_usage: number;
    paygo_limit: number | null;
    search_usage?: number;
    extract_usage?: number;
    crawl_usage?: number;
    map_usage?: number;
    research_usage?: number;
  };
}

export type KeyBehaviour =
  | { kind: 'ok'; usage: UsageBody }
  | { kind: 'status'; status: number; retryAfter?: number; message?: string }
  | { kind: 'hang' }
  | { kind: 'malformed' }
  // Misbehaving upstreams: what a broken proxy, a dying server or a hostile network does.
  /** 200 headers, part of the body, then the connection is reset. */
  | { kind: 'reset' }
  /** A chunked 200 whose body stops before its last chunk (the connection closes). */
  | { kind: 'truncate' }
  /** A 200 whose Content-Length promises more than is sent before the connection closes. */
  | { kind: 'short' }
  /** A valid answer sent one byte every `intervalMs`. */
  | { kind: 'trickle'; intervalMs: number }
  /** A 200 JSON answer of `bytes` bytes, streamed. */
  | { kind: 'huge'; bytes: number }
  /** A 200 that is an HTML page (a proxy's error page), not JSON. */
  | { kind: 'html' }
  /** A normal answer whose usage.credits is this value (with include_usage). */
  | { kind: 'credits'; credits: unknown }
  /** 500 on every other request (the first, the third, …), a normal answer in between. */
  | { kind: 'flaky' };

export interface FakeAccountOptions {
  plan?: string;
  planLimit: number;
  /** Credits used in the current cycle before the keys' own use. */
  planUsage?: number;
  paygoLimit?: number | null;
  /** The day of the month (UTC) each billing cycle starts. */
  cycleDay?: number;
  /** The account's keys: a key text, or a key with a limit of its own. */
  keys: (string | { key: string; limit: number | null })[];
}

interface FakeAccount {
  name: string;
  plan: string;
  planLimit: number;
  planUsage: number;
  paygoLimit: number | null;
  paygoUsage: number;
  cycleDay: number;
  cycleStart: number;
  keys: Map<string, { limit: number | null; usage: number }>;
}

/** The start (epoch ms) of the billing cycle that `now` falls in, for cycles starting on `day`. */
export function cycleStartOf(now: number, day: number): number {
  const d = new Date(now);
  let start = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), day);
  if (start > now) start = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() - 1, day);
  return start;
}

export interface FakeTavilyOptions {
  port?: number;
  /** Delay before every answer. */
  latencyMs?: number;
}

export interface FakeStats {
  usageCalls: number;
  /** Requests to the other endpoints, by path (`/search`, `/research/:id`, …). */
  requests: Map<string, number>;
  /** Credits billed to each key by the request endpoints. */
  creditsByKey: Map<string, number>;
  /** Research event streams that have ended. */
  streamsEnded: number;
  /** Requests whose caller went away before the answer (the gateway cancelled them). */
  abandoned: number;
  /** The last request to a request endpoint, as received. */
  last: { path: string; headers: http.IncomingHttpHeaders; body: unknown } | null;
  inFlight: number;
  maxInFlight: number;
  /** /usage calls, by key. */
  callsByKey: Map<string, number>;
  /** Requests to the other endpoints, by key (whatever the answer). */
  requestsByKey: Map<string, number>;
  /** Requests that carried no Bearer key. */
  unauthenticated: number;
  /** Feedback received, by the key that sent it. */
  feedbackByKey: Map<string, number>;
  /** Requests refused because the key's account (or its own limit) had no room. */
  refusedForCredits: number;
  /** Polls of each research task (GET /research/:id), by request_id. */
  researchPollsById: Map<string, number>;
}

const MESSAGES: Record<number, string> = {
  400: 'Bad request.',
  401: 'Unauthorized: missing or invalid API key.',
  429: 'Your request has been blocked due to excessive requests. Please reduce rate of requests.',
  432: "This request exceeds your plan's set usage limit. Please upgrade your plan or contact support@tavily.com",
  433: 'This request exceeds the pay-as-you-go limit. You can increase your limit on the Tavily dashboard.',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};

/** Figures a plain key reports: a free-plan key with a usage derived from its text. */
export function defaultUsage(key: string): UsageBody {
  const used = createHash('sha256').update(key).digest().readUInt16BE(0) % 900;
  const search = Math.floor(used * 0.7);
  return {
    key: { usage: used, limit: 1000, search_usage: search, extract_usage: used - search, crawl_usage: 0, map_usage: 0, research_usage: 0 },
    account: {
      current_plan: 'Researcher',
      plan_usage: used,
      plan_limit: 1000,
      paygo_usage: 0,
      paygo_limit: null,
      search_usage: search,
      extract_usage: used - search,
      crawl_usage: 0,
      map_usage: 0,
      research_usage: 0,
    },
  };
}

export function behaviourByName(key: string): KeyBehaviour {
  if (key.includes('invalid')) return { kind: 'status', status: 401 };
  if (key.includes('ratelimit')) return { kind: 'status', status: 429, retryAfter: 60 };
  if (key.includes('plan432')) return { kind: 'status', status: 432 };
  if (key.includes('paygo433')) return { kind: 'status', status: 433 };
  if (key.includes('error5xx')) return { kind: 'status', status: 500 };
  if (key.includes('hang')) return { kind: 'hang' };
  if (key.includes('malformed')) return { kind: 'malformed' };
  const usage = defaultUsage(key);
  if (key.includes('spent')) {
    usage.key.usage = 1000;
    usage.account.plan_usage = 1000;
  }
  return { kind: 'ok', usage };
}

interface UsageHold {
  count: number;
  answers: (() => void)[];
  timer: NodeJS.Timeout | null;
}

export class FakeTavily {
  readonly stats: FakeStats = {
    usageCalls: 0,
    requests: new Map(),
    creditsByKey: new Map(),
    streamsEnded: 0,
    abandoned: 0,
    last: null,
    inFlight: 0,
    maxInFlight: 0,
    callsByKey: new Map(),
    requestsByKey: new Map(),
    unauthenticated: 0,
    feedbackByKey: new Map(),
    refusedForCredits: 0,
    researchPollsById: new Map(),
  };
  latencyMs: number;
  /** Held /usage answers, released together (see holdUsage). */
  #usageHold: UsageHold | null = null;
  readonly #accounts = new Map<string, FakeAccount>();
  readonly #accountOfKey = new Map<string, FakeAccount>();
  #now: (() => number) = Date.now;
  /** Gap between research stream events. */
  streamIntervalMs = 50;
  /** A research task answers 202 (in progress) to this many polls before it is completed. */
  researchPendingPolls = 0;
  /** How many pages a crawl or map finds on any site (at most the request's `limit`, 50 when none). */
  sitePages = 3;
  readonly #requestKeys = new Map<string, KeyBehaviour>();
  readonly #flakyCount = new Map<string, number>();
  /** request_id → the key that created the task, and whether it was billed. */
  readonly #research = new Map<string, { key: string; billed: boolean; model: string; polls: number }>();
  readonly #server: http.Server;
  readonly #keys = new Map<string, KeyBehaviour>();
  #url = '';

  private constructor(opts: FakeTavilyOptions) {
    this.latencyMs = opts.latencyMs ?? 0;
    this.#server = http.createServer((req, res) => this.#handle(req, res));
    this.#server.keepAliveTimeout = 120_000;
    this.#server.headersTimeout = 121_000;
    this.#server.requestTimeout = 0;
  }

  static async start(opts: FakeTavilyOptions = {}): Promise<FakeTavily> {
    const fake = new FakeTavily(opts);
    await new Promise<void>((resolve, reject) => {
      fake.#server.once('error', reject);
      fake.#server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
    });
    fake.#url = `http://127.0.0.1:${(fake.#server.address() as AddressInfo).port}`;
    return fake;
  }

  get url(): string {
    return this.#url;
  }

  /** Keys that share one plan's credits, with billing cycles that start on `cycleDay`. */
  addAccount(name: string, o: FakeAccountOptions): void {
    const a: FakeAccount = {
      name,
      plan: o.plan ?? 'Researcher',
      planLimit: o.planLimit,
      planUsage: o.planUsage ?? 0,
      paygoLimit: o.paygoLimit ?? null,
      paygoUsage: 0,
      cycleDay: o.cycleDay ?? 1,
      cycleStart: cycleStartOf(this.#now(), o.cycleDay ?? 1),
      keys: new Map(),
    };
    for (const k of o.keys) {
      const [key, limit] = typeof k === 'string' ? [k, null] : [k.key, k.limit];
      a.keys.set(key, { limit, usage: 0 });
      this.#accountOfKey.set(key, a);
    }
    this.#accounts.set(name, a);
  }

  /** The account's live figures (after any cycle change by the fake's clock). */
  account(name: string): { planUsage: number; paygoUsage: number; keys: Map<string, { limit: number | null; usage: number }> } {
    const a = this.#accounts.get(name)!;
    this.#roll(a);
    return a;
  }

  /** The fake's clock (for billing cycles); `null` goes back to the real one. */
  setNow(ms: number | null): void {
    this.#now = ms === null ? Date.now : () => ms;
  }

  /** Credits spent from a key of an account by something other than the gateway. */
  spendOutside(key: string, credits: number): void {
    this.#charge(key, credits);
  }

  /** A new cycle by the fake's clock: usage starts again from nothing. */
  #roll(a: FakeAccount): void {
    const start = cycleStartOf(this.#now(), a.cycleDay);
    if (start === a.cycleStart) return;
    a.cycleStart = start;
    a.planUsage = 0;
    a.paygoUsage = 0;
    for (const k of a.keys.values()) k.usage = 0;
  }

  #charge(key: string, credits: number): void {
    const a = this.#accountOfKey.get(key);
    if (!a) return;
    this.#roll(a);
    a.keys.get(key)!.usage += credits;
    const toPlan = Math.min(credits, Math.max(0, a.planLimit - a.planUsage));
    a.planUsage += toPlan;
    a.paygoUsage += credits - toPlan;
  }

  /** 432 (the key's limit or the plan) or 433 (pay-as-you-go) when the key's account has no room for `cost`; null when it has. */
  #refusal(key: string, cost: number): number | null {
    const a = this.#accountOfKey.get(key);
    if (!a) return null;
    this.#roll(a);
    const k = a.keys.get(key)!;
    if (k.limit !== null && k.usage + cost > k.limit) return 432;
    const planRoom = a.planLimit - a.planUsage;
    if (planRoom >= cost) return null;
    if (a.paygoLimit === null) return 432;
    return planRoom + a.paygoLimit - a.paygoUsage >= cost ? null : 433;
  }

  #accountUsage(key: string): UsageBody | null {
    const a = this.#accountOfKey.get(key);
    if (!a) return null;
    this.#roll(a);
    const k = a.keys.get(key)!;
    return {
      key: { usage: k.usage, limit: k.limit, search_usage: k.usage },
      account: { current_plan: a.plan, plan_usage: a.planUsage, plan_limit: a.planLimit, paygo_usage: a.paygoUsage, paygo_limit: a.paygoLimit, search_usage: a.planUsage + a.paygoUsage },
    };
  }

  setKey(key: string, behaviour: KeyBehaviour): void {
    this.#keys.set(key, behaviour);
  }

  behaviourOf(key: string): KeyBehaviour {
    return this.#keys.get(key) ?? behaviourByName(key);
  }

  /** How a key answers the request endpoints (search, extract, …), overriding its name. */
  setRequestBehaviour(key: string, behaviour: KeyBehaviour): void {
    this.#requestKeys.set(key, behaviour);
  }

  requestBehaviourOf(key: string): KeyBehaviour | 'flaky' {
    const set = this.#requestKeys.get(key);
    if (set) return set;
    if (key.includes('spent')) return { kind: 'status', status: 432 };
    if (key.includes('flaky')) return 'flaky';
    const b = behaviourByName(key);
    return b.kind === 'malformed' ? { kind: 'status', status: 500 } : b;
  }

  /**
   * Holds the next /usage answers until `count` calls are in flight together, or `maxWaitMs` after
   * the first held one, and releases them at once; later calls are answered as usual. A test of
   * concurrency then does not depend on how fast a loaded machine sends the calls: concurrent
   * calls all arrive while the first is held, serial ones cannot (the first waits out the deadline).
   */
  holdUsage(count: number, maxWaitMs: number): void {
    this.#usageHold = { count, answers: [], timer: null };
    const hold = this.#usageHold;
    hold.timer = setTimeout(() => this.#releaseUsage(hold), maxWaitMs);
  }

  #releaseUsage(hold: UsageHold): void {
    if (this.#usageHold !== hold) return;
    this.#usageHold = null;
    if (hold.timer) clearTimeout(hold.timer);
    for (const answer of hold.answers) answer();
  }

  /** Credits billed across all keys. */
  get totalCredits(): number {
    let n = 0;
    for (const c of this.stats.creditsByKey.values()) n += c;
    return n;
  }

  resetStats(): void {
    this.stats.usageCalls = 0;
    this.stats.requests.clear();
    this.stats.creditsByKey.clear();
    this.stats.streamsEnded = 0;
    this.stats.abandoned = 0;
    this.stats.last = null;
    this.stats.maxInFlight = this.stats.inFlight;
    this.stats.callsByKey.clear();
    this.stats.requestsByKey.clear();
    this.stats.unauthenticated = 0;
    this.stats.feedbackByKey.clear();
    this.stats.refusedForCredits = 0;
    this.stats.researchPollsById.clear();
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://fake');
    const path = url.pathname;
    if (req.method === 'GET' && path === '/usage') return this.#usage(req, res);
    const endpoint =
      req.method === 'POST' && ['/search', '/extract', '/crawl', '/map', '/research', '/feedback'].includes(path)
        ? path
        : req.method === 'GET' && path.startsWith('/research/')
          ? '/research/:id'
          : null;
    if (!endpoint) return send(res, 404, { detail: { error: 'Not Found' } });
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (d) => (raw += d));
    req.on('end', () => {
      let body: Record<string, unknown> = {};
      if (req.method === 'POST') {
        try {
          body = JSON.parse(raw) as Record<string, unknown>;
        } catch {
          return send(res, 400, { detail: { error: 'Invalid JSON body.' } });
        }
      } else {
        body = { include_usage: url.searchParams.get('include_usage') === 'true' };
      }
      this.stats.requests.set(endpoint, (this.stats.requests.get(endpoint) ?? 0) + 1);
      this.stats.last = { path, headers: req.headers, body };
      this.#request(endpoint, path, req, res, body);
    });
  }

  #bill(key: string, credits: number): void {
    this.stats.creditsByKey.set(key, (this.stats.creditsByKey.get(key) ?? 0) + credits);
    this.#charge(key, credits);
  }

  #request(endpoint: string, path: string, req: http.IncomingMessage, res: http.ServerResponse, body: Record<string, unknown>): void {
    const key = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
    if (!key) return send(res, 401, { detail: { error: MESSAGES[401] } });
    this.stats.requestsByKey.set(key, (this.stats.requestsByKey.get(key) ?? 0) + 1);
    let b = this.requestBehaviourOf(key);
    if (b === 'flaky' || (typeof b === 'object' && b.kind === 'flaky')) {
      const n = (this.#flakyCount.get(key) ?? 0) + 1;
      this.#flakyCount.set(key, n);
      b = n % 2 === 1 ? { kind: 'status', status: 500 } : { kind: 'ok', usage: defaultUsage(key) };
    }
    const behaviour = b;
    res.once('close', () => {
      if (!res.writableFinished) this.stats.abandoned++;
    });
    if (behaviour.kind === 'hang') return;
    const answer = () => {
      if (res.destroyed) return;
      if (misbehave(behaviour, res, () => this.#answerText(endpoint, path, key, body))) return;
      if (behaviour.kind === 'credits') {
        this.#serve(endpoint, path, key, res, body, behaviour.credits);
        return;
      }
      if (behaviour.kind === 'status') {
        const headers: Record<string, string> = {};
        if (behaviour.retryAfter !== undefined) headers['retry-after'] = String(behaviour.retryAfter);
        return send(res, behaviour.status, { detail: { error: behaviour.message ?? MESSAGES[behaviour.status] ?? 'Error' } }, headers);
      }
      if (endpoint !== '/feedback' && endpoint !== '/research/:id') {
        const refused = this.#refusal(key, endpoint === '/search' && body.search_depth === 'advanced' ? 2 : 1);
        if (refused !== null) {
          this.stats.refusedForCredits++;
          return send(res, refused, { detail: { error: MESSAGES[refused] } });
        }
      }
      this.#serve(endpoint, path, key, res, body);
    };
    if (this.latencyMs > 0) setTimeout(answer, this.latencyMs);
    else answer();
  }

  /** What a good key would answer to a search: the body a misbehaving answer mangles. */
  #answerText(endpoint: string, _path: string, key: string, body: Record<string, unknown>): string {
    this.#bill(key, 1);
    const query = typeof body.query === 'string' ? body.query : endpoint;
    return JSON.stringify({ query, results: [{ title: `About ${query}`, url: 'https://example.com/1', content: 'Some content.', score: 0.9 }], request_id: randomUUID(), response_time: 0.01, ...(body.include_usage === true ? { usage: { credits: 1 } } : {}) });
  }

  #serve(endpoint: string, path: string, key: string, res: http.ServerResponse, body: Record<string, unknown>, reportCredits?: unknown): void {
    const withUsage = body.include_usage === true;
    const requestId = randomUUID();
    const reply = (status: number, payload: Record<string, unknown>, credits: number) => {
      this.#bill(key, credits);
      const reported = reportCredits === undefined ? credits : reportCredits;
      send(res, status, { ...payload, request_id: requestId, response_time: 0.01, ...(withUsage ? { usage: { credits: reported } } : {}) });
    };
    switch (endpoint) {
      case '/search': {
        const query = body.query;
        if (typeof query !== 'string') return send(res, 400, { detail: { error: 'query is required.' } });
        if (query.length > 400) return send(res, 400, { detail: { error: 'Query is too long. Max query length is 400 characters.' } });
        const max = body.max_results;
        if (max !== undefined && (typeof max !== 'number' || !Number.isInteger(max) || max < 0 || max > 20)) return send(res, 400, { detail: { error: 'max_results must be between 0 and 20.' } });
        const results = [1, 2, 3].slice(0, typeof max === 'number' ? max : 3).map((i) => ({ title: `Result ${i} for ${query}`, url: `https://example.com/${i}`, content: `About ${query}`, score: 1 - i / 10 }));
        return reply(200, { query, answer: body.include_answer ? `An answer about ${query}` : undefined, images: [], results, follow_up_questions: null }, body.search_depth === 'advanced' ? 2 : 1);
      }
      case '/extract': {
        const urls = typeof body.urls === 'string' ? [body.urls] : Array.isArray(body.urls) ? (body.urls as string[]) : [];
        if (urls.length === 0) return send(res, 400, { detail: { error: 'urls is required.' } });
        const results = urls.map((u) => ({ url: u, raw_content: `Content of ${u}`, images: [] }));
        return reply(200, { results, failed_results: [] }, Math.ceil(urls.length / 5) * (body.extract_depth === 'advanced' ? 2 : 1));
      }
      case '/crawl':
      case '/map': {
        const url = body.url;
        if (typeof url !== 'string') return send(res, 400, { detail: { error: 'url is required.' } });
        if (url.includes('unsupported')) return send(res, 403, { detail: { error: 'URL is not supported' } });
        // Tavily (pydantic, lax) takes a whole number given as text.
        const limit = body.limit === undefined || body.limit === null ? 50 : Number(body.limit);
        if (!Number.isInteger(limit) || limit < 1) return send(res, 400, { detail: { error: 'limit must be a positive integer.' } });
        const found = Math.min(limit, this.sitePages);
        const pages = Array.from({ length: found }, (_, i) => `${url.replace(/\/$/, '')}/page${i + 1}`);
        // Map: 1 credit per 10 pages (2 with instructions); crawl adds extract's 1 per 5 (2 advanced).
        const mapCost = Math.ceil(found / 10) * (body.instructions ? 2 : 1);
        if (endpoint === '/map') return reply(200, { base_url: url, results: pages }, mapCost);
        const extractCost = Math.ceil(found / 5) * (body.extract_depth === 'advanced' ? 2 : 1);
        return reply(200, { base_url: url, results: pages.map((p) => ({ url: p, raw_content: `Content of ${p}` })) }, mapCost + extractCost);
      }
      case '/research': {
        if (typeof body.input !== 'string') return send(res, 400, { detail: { error: 'input is required.' } });
        const model = typeof body.model === 'string' ? body.model : 'auto';
        if (body.stream === true) return this.#stream(key, res, requestId, model);
        this.#research.set(requestId, { key, billed: false, model, polls: 0 });
        return send(res, 201, { request_id: requestId, created_at: new Date().toISOString(), status: 'pending', input: body.input, model, response_time: 0.01 });
      }
      case '/feedback': {
        // Free: filed under the key that sent it.
        this.stats.feedbackByKey.set(key, (this.stats.feedbackByKey.get(key) ?? 0) + 1);
        return send(res, 200, { success: true, feedback_id: randomUUID(), response_time: 0.01 });
      }
      case '/research/:id': {
        const id = decodeURIComponent(path.slice('/research/'.length));
        this.stats.researchPollsById.set(id, (this.stats.researchPollsById.get(id) ?? 0) + 1);
        const task = this.#research.get(id);
        // A task is visible only to the key that created it, as on Tavily.
        if (!task || task.key !== key) return send(res, 404, { detail: { error: 'Research task not found.' } });
        if (++task.polls <= this.researchPendingPolls) return send(res, 202, { request_id: id, status: 'in_progress', response_time: 0.01 });
        const credits = task.model === 'pro' ? 15 : 4;
        if (!task.billed) {
          task.billed = true;
          this.#bill(key, credits);
        }
        return send(res, 200, {
          request_id: id,
          status: 'completed',
          content: 'A research report.',
          sources: [{ title: 'Source', url: 'https://example.com/source' }],
          response_time: 1.5,
          ...(withUsage ? { usage: { credits } } : {}),
        });
      }
    }
  }

  /** Research as an event stream: a few chunks `streamIntervalMs` apart, then `event: done`. */
  #stream(key: string, res: http.ServerResponse, requestId: string, model: string): void {
    this.#bill(key, model === 'pro' ? 15 : 4);
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const parts = ['Research', ' in', ' progress', '.'];
    let i = 0;
    const tick = () => {
      if (res.destroyed) return;
      if (i < parts.length) {
        const event = { id: requestId, object: 'chat.completion.chunk', model, created: Date.now(), choices: [{ delta: { role: 'assistant', content: parts[i] } }] };
        res.write(`data: ${JSON.stringify(event)}\n\n`);
        i++;
        setTimeout(tick, this.streamIntervalMs);
      } else {
        this.stats.streamsEnded++;
        res.end('event: done\ndata: {}\n\n');
      }
    };
    tick();
  }

  #usage(req: http.IncomingMessage, res: http.ServerResponse): void {
    const st = this.stats;
    st.usageCalls++;
    st.inFlight++;
    st.maxInFlight = Math.max(st.maxInFlight, st.inFlight);
    let done = false;
    const finish = () => {
      if (!done) {
        done = true;
        st.inFlight--;
      }
    };
    res.once('close', finish);

    const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    const key = m?.[1];
    if (key) st.callsByKey.set(key, (st.callsByKey.get(key) ?? 0) + 1);
    else st.unauthenticated++;
    const live = key && !this.#keys.has(key) ? this.#accountUsage(key) : null;
    const behaviour: KeyBehaviour = live ? { kind: 'ok', usage: live } : key ? this.behaviourOf(key) : { kind: 'status', status: 401 };
    if (behaviour.kind === 'hang') return; // answer never comes; the client's timeout must fire

    const answer = () => {
      if (misbehave(behaviour, res, () => JSON.stringify(key ? defaultUsage(key) : {}))) return;
      switch (behaviour.kind) {
        case 'credits':
        case 'flaky':
        case 'ok':
          return send(res, 200, behaviour.kind === 'ok' ? behaviour.usage : defaultUsage(key!));
        case 'malformed':
          res.writeHead(200, { 'content-type': 'application/json' });
          return res.end('{"key": {"usage": 12, "limit": ');
        case 'status': {
          const headers: Record<string, string> = {};
          if (behaviour.retryAfter !== undefined) headers['retry-after'] = String(behaviour.retryAfter);
          return send(res, behaviour.status, { detail: { error: behaviour.message ?? MESSAGES[behaviour.status] ?? 'Error' } }, headers);
        }
      }
    };
    const hold = this.#usageHold;
    if (hold) {
      hold.answers.push(answer);
      if (hold.answers.length >= hold.count) this.#releaseUsage(hold);
    } else if (this.latencyMs > 0) setTimeout(answer, this.latencyMs);
    else answer();
  }
}

/** Answers as a misbehaving upstream would; false when the behaviour is not one of those. */
function misbehave(b: KeyBehaviour, res: http.ServerResponse, goodText: () => string): boolean {
  switch (b.kind) {
    case 'reset': {
      const text = goodText();
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.write(text.slice(0, Math.floor(text.length / 2)));
      setTimeout(() => res.socket?.resetAndDestroy(), 20);
      return true;
    }
    case 'truncate': {
      const text = goodText();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(text.slice(0, Math.floor(text.length / 2)));
      setTimeout(() => res.socket?.destroy(), 20);
      return true;
    }
    case 'short': {
      const text = goodText();
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) + 100 });
      res.write(text);
      setTimeout(() => res.socket?.end(), 20);
      return true;
    }
    case 'trickle': {
      const bytes = Buffer.from(goodText());
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': bytes.length });
      let i = 0;
      const tick = () => {
        if (res.destroyed) return;
        if (i >= bytes.length) return void res.end();
        res.write(bytes.subarray(i, i + 1));
        i++;
        setTimeout(tick, b.intervalMs);
      };
      tick();
      return true;
    }
    case 'huge': {
      res.writeHead(200, { 'content-type': 'application/json' });
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      res.write('{"results": [], "padding": "');
      let sent = 0;
      const pump = () => {
        while (sent < b.bytes) {
          if (res.destroyed) return;
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end('"}');
      };
      pump();
      return true;
    }
    case 'html': {
      const page = '<!doctype html><html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>';
      res.writeHead(200, { 'content-type': 'text/html', 'content-length': Buffer.byteLength(page) });
      res.end(page);
      return true;
    }
    default:
      return false;
  }
}

function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

// Standalone: print {"url": …} on the first line of stdout; answer {"cmd": "stats"} over IPC.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const fake = await FakeTavily.start({
    port: Number(process.env.PORT ?? 0),
    latencyMs: Number(process.env.LATENCY_MS ?? 0),
  });
  process.stdout.write(`${JSON.stringify({ url: fake.url })}\n`);
  process.on('message', (msg: { cmd?: string; latencyMs?: number }) => {
    if (msg.cmd === 'stats') {
      process.send?.({ stats: { ...fake.stats, callsByKey: fake.stats.callsByKey.size, requestsByKey: fake.stats.requestsByKey.size } });
    } else if (msg.cmd === 'reset') {
      fake.resetStats();
      process.send?.({ ok: true });
    }
  });
  const stop = () => void fake.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('disconnect', stop);
}

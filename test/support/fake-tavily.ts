/**
 * A fake of Tavily's API for tests and benchmarks: a real HTTP server on 127.0.0.1,
 * built from ../shared/tavily-api.md. Each key behaves as set with `setKey`, or else by
 * its name: a key containing
 *   `invalid` → 401, `ratelimit` → 429 (Retry-After 60), `plan432` → 432, `paygo433` → 433,
 *   `error5xx` → 500, `hang` → never answers, `malformed` → a 200 that is not JSON,
 *   `spent` → 200 with every credit used; any other key → 200 with figures derived from the key.
 * Run it alone: `tsx test/support/fake-tavily.ts` (PORT, LATENCY_MS from the environment).
 */
import { createHash } from 'node:crypto';
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
  | { kind: 'malformed' };

export interface FakeTavilyOptions {
  port?: number;
  /** Delay before every answer. */
  latencyMs?: number;
}

export interface FakeStats {
  usageCalls: number;
  inFlight: number;
  maxInFlight: number;
  callsByKey: Map<string, number>;
  /** Requests that carried no Bearer key. */
  unauthenticated: number;
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

export class FakeTavily {
  readonly stats: FakeStats = { usageCalls: 0, inFlight: 0, maxInFlight: 0, callsByKey: new Map(), unauthenticated: 0 };
  latencyMs: number;
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

  setKey(key: string, behaviour: KeyBehaviour): void {
    this.#keys.set(key, behaviour);
  }

  behaviourOf(key: string): KeyBehaviour {
    return this.#keys.get(key) ?? behaviourByName(key);
  }

  resetStats(): void {
    this.stats.usageCalls = 0;
    this.stats.maxInFlight = this.stats.inFlight;
    this.stats.callsByKey.clear();
    this.stats.unauthenticated = 0;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/usage') return this.#usage(req, res);
    send(res, 404, { detail: { error: 'Not Found' } });
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
    const behaviour: KeyBehaviour = key ? this.behaviourOf(key) : { kind: 'status', status: 401 };
    if (behaviour.kind === 'hang') return; // answer never comes; the client's timeout must fire

    const answer = () => {
      switch (behaviour.kind) {
        case 'ok':
          return send(res, 200, behaviour.usage);
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
    if (this.latencyMs > 0) setTimeout(answer, this.latencyMs);
    else answer();
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
      process.send?.({ stats: { ...fake.stats, callsByKey: fake.stats.callsByKey.size } });
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

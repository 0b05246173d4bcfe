import { type Dispatcher, Pool } from 'undici';
import { UpstreamError, kindForStatus, parseRetryAfter, scrubKeys } from './errors.js';
import { UsageShapeError, type UsageReport, parseUsage } from './usage.js';

export interface TavilyClientOptions {
  baseUrl: string;
  /** Keep idle connections this long, so a later refresh reuses them. */
  keepAliveMs?: number;
  connectTimeoutMs?: number;
}

/**
 * The upstream client: one keep-alive pool to Tavily's origin. Over HTTPS it offers HTTP/2
 * (ALPN): where the upstream accepts it, up to 100 calls share each TLS connection instead of
 * paying a handshake per concurrent call.
 */
export class TavilyClient {
  readonly #pool: Pool;
  readonly #basePath: string;

  constructor(opts: TavilyClientOptions) {
    const u = new URL(opts.baseUrl);
    this.#basePath = u.pathname.replace(/\/+$/, '');
    this.#pool = new Pool(u.origin, {
      connections: null,
      pipelining: 1,
      keepAliveTimeout: opts.keepAliveMs ?? 60_000,
      keepAliveMaxTimeout: 10 * 60_000,
      connectTimeout: opts.connectTimeoutMs ?? 10_000,
      allowH2: u.protocol === 'https:',
    });
  }

  /**
   * GET /usage with the key; throws UpstreamError, classified, on every kind of failure.
   * `timeoutMs` bounds the wait for the answer's headers and any stall in its body (undici's
   * own timers: no timer or abort signal per call); connecting has its own bound.
   */
  async usage(key: string, timeoutMs: number): Promise<UsageReport> {
    let res;
    let text: string;
    try {
      res = await this.#pool.request({
        method: 'GET',
        path: `${this.#basePath}/usage`,
        headers: { authorization: `Bearer ${key}`, accept: 'application/json' },
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      text = await res.body.text();
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
        throw new UpstreamError('timeout', `timed out after ${timeoutMs} ms`);
      }
      if (code === 'UND_ERR_CONNECT_TIMEOUT') throw new UpstreamError('timeout', 'timed out connecting to Tavily');
      throw new UpstreamError('network', `network error: ${scrubKeys(code ?? (err as Error).message)}`);
    }
    if (res.statusCode !== 200) {
      throw new UpstreamError(
        kindForStatus(res.statusCode),
        `${res.statusCode}: ${upstreamMessage(text)}`,
        res.statusCode,
        parseRetryAfter(res.headers['retry-after']),
      );
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new UpstreamError('malformed', 'malformed /usage response: not JSON', res.statusCode);
    }
    try {
      return parseUsage(body);
    } catch (err) {
      if (err instanceof UsageShapeError) {
        throw new UpstreamError('malformed', `malformed /usage response: ${err.message}`, res.statusCode);
      }
      throw err;
    }
  }

  /**
   * Sends a gateway request upstream with the chosen key. `timeoutMs` bounds the wait for the
   * headers and any stall in the body (null: no bound, for event streams); `signal` cancels it
   * when the client goes away. Throws UpstreamError ('timeout' | 'network'), or the signal's
   * reason when cancelled.
   */
  async forward(opts: {
    method: 'GET' | 'POST';
    path: string;
    key: string;
    headers: Record<string, string>;
    body?: string;
    timeoutMs: number | null;
    /** An AbortSignal, or an EventEmitter with an `aborted` flag that emits 'abort'. */
    signal?: { readonly aborted: boolean } & (AbortSignal | NodeJS.EventEmitter);
  }): Promise<Dispatcher.ResponseData> {
    try {
      return await this.#pool.request({
        method: opts.method,
        path: `${this.#basePath}${opts.path}`,
        headers: { ...opts.headers, authorization: `Bearer ${opts.key}` },
        body: opts.body,
        headersTimeout: opts.timeoutMs ?? 0,
        bodyTimeout: opts.timeoutMs ?? 0,
        signal: opts.signal,
      });
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      const code = (err as { code?: string }).code;
      if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') {
        throw new UpstreamError('timeout', `Tavily did not answer within ${opts.timeoutMs} ms`);
      }
      throw new UpstreamError('network', `network error: ${scrubKeys(code ?? (err as Error).message)}`);
    }
  }

  async close(): Promise<void> {
    await this.#pool.close();
  }
}

/** The human part of a Tavily error body (`{"detail": {"error": …}}`), scrubbed of keys. */
export function upstreamMessage(text: string): string {
  try {
    const body = JSON.parse(text) as { detail?: { error?: unknown } | string; error?: { message?: unknown } };
    const detail = body.detail;
    const msg =
      typeof detail === 'string'
        ? detail
        : typeof detail?.error === 'string'
          ? detail.error
          : typeof body.error?.message === 'string'
            ? body.error.message
            : undefined;
    if (msg) return scrubKeys(msg).slice(0, 500);
  } catch {
    // not JSON: fall through
  }
  return text.trim() === '' ? 'no body' : scrubKeys(text.trim()).slice(0, 200);
}

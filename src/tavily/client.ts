import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { type Dispatcher, EnvHttpProxyAgent, Pool } from 'undici';
import { storableText } from '../text.js';
import { UpstreamError, kindForStatus, parseRetryAfter, scrubKeys } from './errors.js';
import { UsageShapeError, type UsageReport, parseUsage } from './usage.js';

/** Proxy settings for the upstream calls (HTTPS_PROXY, HTTP_PROXY, NO_PROXY). */
export interface ProxySettings {
  httpProxy?: string;
  httpsProxy?: string;
  noProxy?: string;
}

/** Through the proxy when HTTP(S)_PROXY is set (NO_PROXY hosts directly), else `direct`: the upstream and the alert sinks alike. */
export function viaProxy<O extends EnvHttpProxyAgent.Options>(proxy: ProxySettings | undefined, options: O, direct: (options: O) => Dispatcher): Dispatcher {
  return proxy && (proxy.httpProxy || proxy.httpsProxy)
    ? new EnvHttpProxyAgent({ ...options, httpProxy: proxy.httpProxy, httpsProxy: proxy.httpsProxy, noProxy: proxy.noProxy ?? '' })
    : direct(options);
}

export interface TavilyClientOptions {
  baseUrl: string;
  /** Keep idle connections this long, so a later refresh reuses them. */
  keepAliveMs?: number;
  connectTimeoutMs?: number;
  /** Answers larger than this are refused as upstream failures (UPSTREAM_MAX_BODY_BYTES). */
  maxBodyBytes?: number;
  /** Reach Tavily through an HTTP proxy; NO_PROXY hosts are reached directly. */
  proxy?: ProxySettings;
}

/** A cancellation signal: an AbortSignal, or an EventEmitter with an `aborted` flag that emits 'abort'. */
export type CancelSignal = { readonly aborted: boolean } & (AbortSignal | NodeJS.EventEmitter);

/** Tavily's answer to a forwarded request. */
export interface UpstreamAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  /** The whole body, read within the deadline and the size limit ('' when `stream` is set). */
  text: string;
  /** Set for a 200 to a streaming request: the event stream, unread, with no deadline on it. */
  stream: Readable | null;
}

export interface ForwardRequest {
  method: 'GET' | 'POST';
  path: string;
  key: string;
  headers: Record<string, string>;
  body?: string;
  /** The deadline for the whole answer, headers and body (null: none, for event streams). */
  timeoutMs: number | null;
  /** A 200 answer is an event stream: hand it over unread. */
  stream?: boolean;
  /** Cancels the call when the client goes away. */
  signal?: CancelSignal;
}

export const DEFAULT_MAX_BODY_BYTES = 50 * 1024 * 1024;

/**
 * The upstream client: one keep-alive pool to Tavily's origin (or, behind a corporate proxy,
 * undici's EnvHttpProxyAgent). Over HTTPS it offers HTTP/2 (ALPN): where the upstream accepts
 * it, up to 100 calls share each TLS connection instead of paying a handshake per call.
 *
 * Every call has a deadline for the whole answer, not only for stalls: an answer that
 * trickles in is cut when the deadline passes. Answers are read up to `maxBodyBytes`; a larger
 * one is refused. An answer that breaks off (reset, truncated, shorter than its
 * Content-Length) is an upstream failure like a refused connection.
 */
export class TavilyClient {
  readonly #dispatcher: Dispatcher;
  readonly #origin: string;
  readonly #basePath: string;
  readonly #maxBody: number;

  constructor(opts: TavilyClientOptions) {
    const u = new URL(opts.baseUrl);
    this.#origin = u.origin;
    this.#basePath = u.pathname.replace(/\/+$/, '');
    this.#maxBody = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    const poolOptions = {
      connections: null,
      pipelining: 1,
      keepAliveTimeout: opts.keepAliveMs ?? 60_000,
      keepAliveMaxTimeout: 10 * 60_000,
      connectTimeout: opts.connectTimeoutMs ?? 10_000,
      allowH2: u.protocol === 'https:',
      // Larger answers are refused as they arrive, before they are buffered.
      maxResponseSize: this.#maxBody,
    };
    this.#dispatcher = viaProxy(opts.proxy, poolOptions, (o) => new Pool(u.origin, o));
  }

  /** GET /usage with the key; throws UpstreamError, classified, on every kind of failure. */
  async usage(key: string, timeoutMs: number): Promise<UsageReport> {
    const res = await this.forward({ method: 'GET', path: '/usage', key, headers: { accept: 'application/json' }, timeoutMs });
    if (res.status !== 200) {
      throw new UpstreamError(kindForStatus(res.status), `${res.status}: ${upstreamMessage(res.text)}`, res.status, parseRetryAfter(res.headers['retry-after']));
    }
    let body: unknown;
    try {
      body = JSON.parse(res.text);
    } catch {
      throw new UpstreamError('malformed', 'malformed /usage response: not JSON', res.status);
    }
    try {
      return parseUsage(body);
    } catch (err) {
      if (err instanceof UsageShapeError) {
        throw new UpstreamError('malformed', `malformed /usage response: ${err.message}`, res.status);
      }
      throw err;
    }
  }

  /**
   * Sends a request upstream with the key and reads the whole answer. Throws UpstreamError
   * ('timeout', 'network', 'too_large') on failure, or the signal's reason when cancelled.
   */
  async forward(opts: ForwardRequest): Promise<UpstreamAnswer> {
    const t0 = performance.now();
    const deadline = opts.timeoutMs;
    let res: Dispatcher.ResponseData;
    try {
      res = await this.#dispatcher.request({
        origin: this.#origin,
        method: opts.method,
        path: `${this.#basePath}${opts.path}`,
        headers: { ...opts.headers, authorization: `Bearer ${opts.key}` },
        body: opts.body,
        // undici's own timers bound the wait for the headers and any stall in the body;
        // the deadline for the whole body is set below, once the headers are in.
        headersTimeout: deadline ?? 0,
        bodyTimeout: deadline ?? 0,
        signal: opts.signal,
      });
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      throw failure(err, deadline);
    }
    if (opts.stream && res.statusCode === 200) return { status: 200, headers: res.headers, text: '', stream: res.body };
    const left = deadline === null ? null : Math.max(1, deadline - (performance.now() - t0));
    const text = await readBody(res, left, deadline, this.#maxBody, opts.signal);
    return { status: res.statusCode, headers: res.headers, text, stream: null };
  }

  async close(): Promise<void> {
    await this.#dispatcher.close();
  }
}

class DeadlineExceeded extends Error {}

/** An undici error as an UpstreamError that says what happened, never naming the key. */
function failure(err: unknown, deadline: number | null): UpstreamError {
  if (err instanceof UpstreamError) return err;
  const code = (err as { code?: string }).code;
  if (err instanceof DeadlineExceeded || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
    return new UpstreamError('timeout', `timed out after ${deadline} ms: Tavily's answer was not complete`);
  }
  if (code === 'UND_ERR_CONNECT_TIMEOUT') return new UpstreamError('timeout', 'timed out connecting to Tavily');
  return new UpstreamError('network', `network error: ${scrubKeys(code ?? (err as Error).message)}`);
}

/**
 * Reads the whole body within `leftMs` (undici's maxResponseSize refuses one that grows past
 * the limit). A body that breaks off or outlives the deadline is destroyed (its connection
 * is not reused) and reported.
 */
async function readBody(res: Dispatcher.ResponseData, leftMs: number | null, deadline: number | null, maxBytes: number, signal?: CancelSignal): Promise<string> {
  const body = res.body;
  if (Number(res.headers['content-length']) > maxBytes) {
    body.destroy();
    throw tooLarge(maxBytes);
  }
  const timer = leftMs === null ? null : setTimeout(() => body.destroy(new DeadlineExceeded()), leftMs);
  try {
    return await body.text();
  } catch (err) {
    if (signal?.aborted) throw err;
    if ((err as { code?: string }).code === 'UND_ERR_RES_EXCEEDED_MAX_SIZE') throw tooLarge(maxBytes);
    const f = failure(err, deadline);
    throw f.kind === 'network' ? new UpstreamError('network', `the answer broke off: ${f.message.replace(/^network error: /, '')}`) : f;
  } finally {
    if (timer) clearTimeout(timer);
  }
}

function tooLarge(maxBytes: number): UpstreamError {
  return new UpstreamError('too_large', `Tavily's answer is larger than UPSTREAM_MAX_BODY_BYTES (${maxBytes} bytes)`);
}

/** The human part of a Tavily error body (`{"detail": {"error": …}}`), scrubbed of keys, storable. */
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
    if (msg) return storableText(scrubKeys(msg).slice(0, 500));
  } catch {
    // not JSON: fall through
  }
  return text.trim() === '' ? 'no body' : storableText(scrubKeys(text.trim()).slice(0, 200));
}

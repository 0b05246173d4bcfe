import fs from 'node:fs';
import path from 'node:path';
import { Agent, type Dispatcher, request } from 'undici';
import { ADMIN_TOKEN_FILE } from '../secrets.js';

/** A failure the CLI reports in a sentence, with the exit code scripts can test. */
export class CliError extends Error {
  constructor(
    message: string,
    /** 1: the command failed; 2: it was used wrongly. */
    readonly exitCode: 1 | 2 = 1,
  ) {
    super(message);
  }
}

export interface Connection {
  url: string;
  token: string;
  /** Where the token came from, for the error that says it was refused. */
  tokenFrom: string;
  /** How long to wait for the connection, and then for each answer to start, in ms. */
  timeoutMs: number;
}

export const DEFAULT_URL = 'http://127.0.0.1:8080';
/** Seconds to wait for a connection and for an answer, unless --timeout (TAVILY_POOL_TIMEOUT) says otherwise. */
export const DEFAULT_TIMEOUT_S = 30;

/**
 * Where to connect: --url and --token, or TAVILY_POOL_URL and ADMIN_TOKEN, or else
 * http://127.0.0.1:8080 and the token the server generated in DATA_DIR/admin-token — so that on
 * the server's own machine no flag is needed.
 */
export function resolveConnection(opts: { url?: string; token?: string; timeout?: string }, env: NodeJS.ProcessEnv = process.env): Connection {
  const timeoutText = (opts.timeout ?? env.TAVILY_POOL_TIMEOUT ?? String(DEFAULT_TIMEOUT_S)).trim();
  const timeoutS = Number(timeoutText);
  if (!/^\d+(\.\d+)?$/.test(timeoutText) || !(timeoutS > 0) || timeoutS > 86_400) {
    throw new CliError(`--timeout must be a number of seconds above 0 (at most 86400), such as ${DEFAULT_TIMEOUT_S}; got "${timeoutText}"`, 2);
  }
  const timeoutMs = Math.round(timeoutS * 1000);
  const raw = (opts.url ?? env.TAVILY_POOL_URL ?? DEFAULT_URL).trim();
  let url: string;
  try {
    const u = new URL(raw);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error();
    url = u.href.replace(/\/+$/, '');
  } catch {
    throw new CliError(`--url must be the server's address, such as ${DEFAULT_URL}; got "${raw}"`, 2);
  }
  if (opts.token?.trim()) return { url, token: opts.token.trim(), tokenFrom: '--token', timeoutMs };
  if (env.ADMIN_TOKEN?.trim()) return { url, token: env.ADMIN_TOKEN.trim(), tokenFrom: 'ADMIN_TOKEN', timeoutMs };
  const file = path.resolve(env.DATA_DIR?.trim() || './data', ADMIN_TOKEN_FILE);
  try {
    const token = fs.readFileSync(file, 'utf8').trim();
    if (token) return { url, token, tokenFrom: file, timeoutMs };
  } catch {
    // Said below.
  }
  throw new CliError(`no admin token: pass --token, set ADMIN_TOKEN, or run where the server's ${file} is readable (DATA_DIR)`, 2);
}

/** An answer: its status, its media type and its body, unread. */
export interface Answer {
  status: number;
  /** The content-type header, lower-cased, without parameters ('' when there is none). */
  type: string;
  body: Dispatcher.ResponseData['body'];
}

/** How long one request may wait for its answer to start: the connection's deadline, or none (a long job that is followed otherwise). */
export interface SendOptions {
  /** 'none': no deadline for the answer (the connection still has one); the caller aborts through `signal`. */
  answerDeadline?: 'default' | 'none';
  signal?: AbortSignal;
}

/**
 * The admin API over HTTP, with errors turned into what to do about them. undici's request
 * rather than fetch: fetch refuses some ports outright (6000, 6665–6669, …), which a server
 * may well listen on.
 */
export class AdminClient {
  /** A connection deadline of our own: a server that never accepts fails in `timeoutMs`, not in the system's minutes. */
  readonly #agent: Agent;

  constructor(readonly c: Connection) {
    this.#agent = new Agent({ connect: { timeout: c.timeoutMs } });
  }

  /** Lets the process end at once (the agent keeps idle connections open otherwise). */
  async close(): Promise<void> {
    await this.#agent.close();
  }

  async request<T>(method: Dispatcher.HttpMethod, route: string, body?: { json?: unknown; text?: string }, opts?: SendOptions): Promise<T> {
    const res = await this.send(method, `/api/v1/admin${route}`, body, opts);
    return (await this.#read(res, route)) as T;
  }

  /**
   * The answer unread when it succeeded with the media type expected (exports stream text); the
   * error when not. A 200 of another type (a proxy's or another server's HTML page) is an error,
   * so that it is never saved as if it were the keys.
   */
  async raw(method: Dispatcher.HttpMethod, route: string, expect: string): Promise<Answer> {
    const res = await this.send(method, `/api/v1/admin${route}`);
    if (res.status >= 300) await this.#read(res, route);
    if (res.type !== expect) {
      await res.body.dump().catch(() => undefined);
      throw new CliError(`${this.c.url} answered ${route} with ${res.type || 'no content type'}, not ${expect} as tavily-pool does: is --url the right server? (nothing was written)`);
    }
    return res;
  }

  /** Any path of the server (the health routes take no token). */
  async send(method: Dispatcher.HttpMethod, pathAndQuery: string, body?: { json?: unknown; text?: string }, opts: SendOptions = {}): Promise<Answer> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.c.token}`, 'user-agent': 'tavily-pool-cli' };
    let payload: string | undefined;
    if (body?.json !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body.json);
    } else if (body?.text !== undefined) {
      headers['content-type'] = 'text/plain';
      payload = body.text;
    }
    const route = pathAndQuery.replace(/^\/api\/v1\/admin/, '').replace(/\?.*/, '');
    const wait = `${this.c.timeoutMs / 1000} s`;
    try {
      const deadline = opts.answerDeadline === 'none' ? 0 : this.c.timeoutMs;
      const res = await request(`${this.c.url}${pathAndQuery}`, { method, headers, body: payload, dispatcher: this.#agent, headersTimeout: deadline, bodyTimeout: deadline, signal: opts.signal });
      const type = String(res.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      return { status: res.statusCode, type, body: res.body };
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'UND_ERR_CONNECT_TIMEOUT') throw new CliError(`${this.c.url} did not accept a connection within ${wait}: check --url (TAVILY_POOL_URL) and that the server is up (--timeout to wait longer)`);
      if (code === 'UND_ERR_HEADERS_TIMEOUT') throw new CliError(`${this.c.url} took the connection but did not answer ${route} within ${wait}: is --url a tavily-pool server, and is it well? (--timeout to wait longer)`);
      if (code === 'UND_ERR_ABORTED' || (err as Error).name === 'AbortError') throw new CliError(`${route} was given up: ${String((opts.signal?.reason as Error | undefined)?.message ?? 'aborted')}`);
      if (code === 'ECONNREFUSED') throw new CliError(`no tavily-pool server answers at ${this.c.url}: start one with \`tavily-pool serve\`, or pass --url (TAVILY_POOL_URL)`);
      if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') throw new CliError(`cannot resolve the host of ${this.c.url}: check --url (TAVILY_POOL_URL)`);
      throw new CliError(`cannot reach ${this.c.url}: ${code ?? (err as Error).message}`);
    }
  }

  async #read(res: Answer, route: string): Promise<unknown> {
    let text: string;
    try {
      text = await res.body.text();
    } catch (err) {
      if ((err as { code?: string }).code === 'UND_ERR_BODY_TIMEOUT') throw new CliError(`${this.c.url} began to answer ${route} but stopped for ${this.c.timeoutMs / 1000} s: is it well? (--timeout to wait longer)`);
      throw new CliError(`${this.c.url} broke off its answer to ${route}: ${(err as { code?: string }).code ?? (err as Error).message}`);
    }
    if (res.status === 204) return undefined;
    let data: unknown = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      if (res.status >= 300) throw new CliError(`${this.c.url} answered ${res.status} to ${route}, not as tavily-pool does: is --url the right server?`);
      throw new CliError(`${this.c.url} answered ${route} with something that is not JSON: is --url the right server?`);
    }
    if (res.status < 300) return data;
    const err = (data as { error?: { code?: string; message?: string } } | null)?.error;
    if (res.status === 401 && /^tp_/.test(this.c.token)) {
      throw new CliError(`the token from ${this.c.tokenFrom} is a client token (tp_…): it is for the gateway's search and MCP endpoints, not for administering the server. Pass the server's ADMIN_TOKEN with --token (or ADMIN_TOKEN); it is in the server's DATA_DIR/admin-token when generated`);
    }
    if (res.status === 401) throw new CliError(`the server refused the admin token from ${this.c.tokenFrom}: pass the server's ADMIN_TOKEN with --token (or ADMIN_TOKEN); it is in the server's DATA_DIR/admin-token when generated`);
    throw new CliError(err?.message ?? `the server answered ${res.status} to ${route}`);
  }
}

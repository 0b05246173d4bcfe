import fs from 'node:fs';
import path from 'node:path';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { finished } from 'node:stream/promises';
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

type Method = 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';

/** Errors of our own deadlines, named as the messages below tell them apart. */
type Deadline = 'CONNECT_TIMEOUT' | 'HEADERS_TIMEOUT' | 'BODY_TIMEOUT';
const deadline = (code: Deadline) => Object.assign(new Error(code), { code });

/** An answer's body, unread: a stream (exports), or read whole. A pause longer than the deadline fails it with BODY_TIMEOUT. */
export class Body {
  constructor(readonly stream: IncomingMessage) {}

  async text(): Promise<string> {
    const parts: Buffer[] = [];
    for await (const chunk of this.stream) parts.push(chunk as Buffer);
    return Buffer.concat(parts).toString('utf8');
  }

  async json(): Promise<unknown> {
    return JSON.parse(await this.text());
  }

  /** Reads and drops what is left, so that the connection can be used again. */
  async dump(): Promise<void> {
    this.stream.resume();
    await finished(this.stream);
  }
}

/** An answer: its status, its media type and its body, unread. */
export interface Answer {
  status: number;
  /** The content-type header, lower-cased, without parameters ('' when there is none). */
  type: string;
  body: Body;
}

/** How long one request may wait for its answer to start: the connection's deadline, or none (a long job that is followed otherwise). */
export interface SendOptions {
  /** 'none': no deadline for the answer (the connection still has one); the caller aborts through `signal`. */
  answerDeadline?: 'default' | 'none';
  signal?: AbortSignal;
}

/**
 * The admin API over HTTP, with errors turned into what to do about them. node:http rather than
 * fetch, which refuses some ports outright (6000, 6665–6669, …) that a server may well listen on,
 * and rather than undici, whose import alone took 0.13 s of a command's 0.27 s.
 */
export class AdminClient {
  /** node:http or node:https, as the URL says. */
  readonly #transport: typeof http | typeof https;
  /** Keeps the connection for the next request (a refresh asks for its progress five times a second). */
  readonly #agent: http.Agent;

  constructor(readonly c: Connection) {
    this.#transport = new URL(c.url).protocol === 'https:' ? https : http;
    this.#agent = new this.#transport.Agent({ keepAlive: true });
  }

  /** Lets the process end at once (the agent keeps idle connections open otherwise). */
  async close(): Promise<void> {
    this.#agent.destroy();
  }

  async request<T>(method: Method, route: string, body?: { json?: unknown; text?: string }, opts?: SendOptions): Promise<T> {
    const res = await this.send(method, `/api/v1/admin${route}`, body, opts);
    return (await this.#read(res, route)) as T;
  }

  /**
   * The answer unread when it succeeded with the media type expected (exports stream text); the
   * error when not. A 200 of another type (a proxy's or another server's HTML page) is an error,
   * so that it is never saved as if it were the keys.
   */
  async raw(method: Method, route: string, expect: string): Promise<Answer> {
    const res = await this.send(method, `/api/v1/admin${route}`);
    if (res.status >= 300) await this.#read(res, route);
    if (res.type !== expect) {
      await res.body.dump().catch(() => undefined);
      throw new CliError(`${this.c.url} answered ${route} with ${res.type || 'no content type'}, not ${expect} as tavily-pool does: is --url the right server? (nothing was written)`);
    }
    return res;
  }

  /** Any path of the server (the health routes take no token). */
  async send(method: Method, pathAndQuery: string, body?: { json?: unknown; text?: string }, opts: SendOptions = {}): Promise<Answer> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.c.token}`, 'user-agent': 'tavily-pool-cli' };
    let payload: Buffer | undefined;
    if (body?.json !== undefined) {
      headers['content-type'] = 'application/json';
      payload = Buffer.from(JSON.stringify(body.json));
    } else if (body?.text !== undefined) {
      headers['content-type'] = 'text/plain';
      payload = Buffer.from(body.text);
    }
    if (payload) headers['content-length'] = String(payload.length);
    const route = pathAndQuery.replace(/^\/api\/v1\/admin/, '').replace(/\?.*/, '');
    const wait = `${this.c.timeoutMs / 1000} s`;
    try {
      const answerMs = opts.answerDeadline === 'none' ? 0 : this.c.timeoutMs;
      const res = await this.#exchange(new URL(`${this.c.url}${pathAndQuery}`), method, headers, payload, answerMs, opts.signal);
      const type = String(res.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      return { status: res.statusCode ?? 0, type, body: new Body(res) };
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'CONNECT_TIMEOUT') throw new CliError(`${this.c.url} did not accept a connection within ${wait}: check --url (TAVILY_POOL_URL) and that the server is up (--timeout to wait longer)`);
      if (code === 'HEADERS_TIMEOUT') throw new CliError(`${this.c.url} took the connection but did not answer ${route} within ${wait}: is --url a tavily-pool server, and is it well? (--timeout to wait longer)`);
      if ((err as Error).name === 'AbortError') throw new CliError(`${route} was given up: ${String((opts.signal?.reason as Error | undefined)?.message ?? 'aborted')}`);
      if (code === 'ECONNREFUSED') throw new CliError(`no tavily-pool server answers at ${this.c.url}: start one with \`tavily-pool serve\`, or pass --url (TAVILY_POOL_URL)`);
      if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') throw new CliError(`cannot resolve the host of ${this.c.url}: check --url (TAVILY_POOL_URL)`);
      throw new CliError(`cannot reach ${this.c.url}: ${code ?? (err as Error).message}`);
    }
  }

  /**
   * One request: the connection within the timeout, then (unless answerMs is 0) the answer's
   * head within answerMs, and no pause longer than answerMs in its body.
   */
  #exchange(url: URL, method: Method, headers: Record<string, string>, payload: Buffer | undefined, answerMs: number, signal?: AbortSignal): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const req = this.#transport.request(url, { method, headers, agent: this.#agent, signal });
      let timer = setTimeout(() => req.destroy(deadline('CONNECT_TIMEOUT')), this.c.timeoutMs);
      const connected = () => {
        clearTimeout(timer);
        if (answerMs > 0) timer = setTimeout(() => req.destroy(deadline('HEADERS_TIMEOUT')), answerMs);
      };
      req.once('socket', (socket) => {
        if (socket.connecting) socket.once('connect', connected);
        else connected();
      });
      req.once('response', (res) => {
        clearTimeout(timer);
        if (answerMs > 0) res.setTimeout(answerMs, () => res.destroy(deadline('BODY_TIMEOUT')));
        resolve(res);
      });
      req.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      req.end(payload);
    });
  }

  async #read(res: Answer, route: string): Promise<unknown> {
    let text: string;
    try {
      text = await res.body.text();
    } catch (err) {
      if ((err as { code?: string }).code === 'BODY_TIMEOUT') throw new CliError(`${this.c.url} began to answer ${route} but stopped for ${this.c.timeoutMs / 1000} s: is it well? (--timeout to wait longer)`);
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

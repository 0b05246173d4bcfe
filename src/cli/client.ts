import fs from 'node:fs';
import path from 'node:path';
import { type Dispatcher, request } from 'undici';
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
}

export const DEFAULT_URL = 'http://127.0.0.1:8080';

/**
 * Where to connect: --url and --token, or TAVILY_POOL_URL and ADMIN_TOKEN, or else
 * http://127.0.0.1:8080 and the token the server generated in DATA_DIR/admin-token — so that on
 * the server's own machine no flag is needed.
 */
export function resolveConnection(opts: { url?: string; token?: string }, env: NodeJS.ProcessEnv = process.env): Connection {
  const raw = (opts.url ?? env.TAVILY_POOL_URL ?? DEFAULT_URL).trim();
  let url: string;
  try {
    const u = new URL(raw);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error();
    url = u.href.replace(/\/+$/, '');
  } catch {
    throw new CliError(`--url must be the server's address, such as ${DEFAULT_URL}; got "${raw}"`, 2);
  }
  if (opts.token?.trim()) return { url, token: opts.token.trim(), tokenFrom: '--token' };
  if (env.ADMIN_TOKEN?.trim()) return { url, token: env.ADMIN_TOKEN.trim(), tokenFrom: 'ADMIN_TOKEN' };
  const file = path.resolve(env.DATA_DIR?.trim() || './data', ADMIN_TOKEN_FILE);
  try {
    const token = fs.readFileSync(file, 'utf8').trim();
    if (token) return { url, token, tokenFrom: file };
  } catch {
    // Said below.
  }
  throw new CliError(`no admin token: pass --token, set ADMIN_TOKEN, or run where the server's ${file} is readable (DATA_DIR)`, 2);
}

/** An answer: its status and its body, unread. */
export interface Answer {
  status: number;
  body: Dispatcher.ResponseData['body'];
}

/**
 * The admin API over HTTP, with errors turned into what to do about them. undici's request
 * rather than fetch: fetch refuses some ports outright (6000, 6665–6669, …), which a server
 * may well listen on.
 */
export class AdminClient {
  constructor(readonly c: Connection) {}

  async request<T>(method: Dispatcher.HttpMethod, route: string, body?: { json?: unknown; text?: string }): Promise<T> {
    const res = await this.send(method, `/api/v1/admin${route}`, body);
    return (await this.#read(res, route)) as T;
  }

  /** The answer unread when it succeeded (exports stream text); the error when not. */
  async raw(method: Dispatcher.HttpMethod, route: string): Promise<Answer> {
    const res = await this.send(method, `/api/v1/admin${route}`);
    if (res.status >= 300) await this.#read(res, route);
    return res;
  }

  /** Any path of the server (the health routes take no token). */
  async send(method: Dispatcher.HttpMethod, pathAndQuery: string, body?: { json?: unknown; text?: string }): Promise<Answer> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.c.token}`, 'user-agent': 'tavily-pool-cli' };
    let payload: string | undefined;
    if (body?.json !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body.json);
    } else if (body?.text !== undefined) {
      headers['content-type'] = 'text/plain';
      payload = body.text;
    }
    try {
      const res = await request(`${this.c.url}${pathAndQuery}`, { method, headers, body: payload });
      return { status: res.statusCode, body: res.body };
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'ECONNREFUSED') throw new CliError(`no tavily-pool server answers at ${this.c.url}: start one with \`tavily-pool serve\`, or pass --url (TAVILY_POOL_URL)`);
      if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') throw new CliError(`cannot resolve the host of ${this.c.url}: check --url (TAVILY_POOL_URL)`);
      throw new CliError(`cannot reach ${this.c.url}: ${code ?? (err as Error).message}`);
    }
  }

  async #read(res: Answer, route: string): Promise<unknown> {
    const text = await res.body.text();
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
    if (res.status === 401) throw new CliError(`the server refused the admin token from ${this.c.tokenFrom}: pass the server's ADMIN_TOKEN with --token (or ADMIN_TOKEN); it is in the server's DATA_DIR/admin-token when generated`);
    throw new CliError(err?.message ?? `the server answered ${res.status} to ${route}`);
  }
}

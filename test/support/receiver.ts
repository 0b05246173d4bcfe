import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** What the receiver answered (null: it never answered). */
  status: number | null;
}

/**
 * A webhook receiver for tests: a real HTTP server on 127.0.0.1 that records every request
 * and answers as planned: the next entries of `plan` (a status, or `hang` to never answer),
 * then 200. Telegram's sendMessage paths get Telegram's JSON answer.
 */
export class Receiver {
  readonly requests: Received[] = [];
  plan: Array<number | 'hang'> = [];
  /** What a non-2xx answer (not Telegram's) says. */
  failBody = 'no';
  readonly #server: http.Server;
  readonly #hanging = new Set<http.ServerResponse>();

  private constructor() {
    this.#server = http.createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (c: Buffer) => parts.push(c));
      req.on('end', () => {
        const r: Received = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body: Buffer.concat(parts).toString('utf8'), status: null };
        this.requests.push(r);
        const next = this.plan.shift() ?? 200;
        if (next === 'hang') {
          this.#hanging.add(res);
          return;
        }
        r.status = next;
        const telegram = r.path.endsWith('/sendMessage');
        const body = telegram ? JSON.stringify(next === 200 ? { ok: true, result: { message_id: this.requests.length } } : { ok: false, error_code: next, description: 'Bad Request: chat not found' }) : next === 200 ? 'ok' : this.failBody;
        res.writeHead(next, { 'content-type': telegram ? 'application/json' : 'text/plain' }).end(body);
      });
    });
  }

  static async start(): Promise<Receiver> {
    const r = new Receiver();
    await new Promise<void>((resolve) => r.#server.listen(0, '127.0.0.1', resolve));
    return r;
  }

  get base(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  url(path = '/hook'): string {
    return `${this.base}${path}`;
  }

  /** Requests it acknowledged (answered 2xx). */
  get acknowledged(): Received[] {
    return this.requests.filter((r) => r.status !== null && r.status >= 200 && r.status < 300);
  }

  /** JSON bodies of the acknowledged requests. */
  json<T = any>(): T[] {
    return this.acknowledged.map((r) => JSON.parse(r.body) as T);
  }

  async close(): Promise<void> {
    for (const res of this.#hanging) res.destroy();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/** Waits until `check` holds (polling), or fails with `what` after `ms` (a deadline, not a timing assertion). */
export async function until(check: () => boolean | Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

import { STATUS_CODES } from 'node:http';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { clientWentAway, describeError } from '../http/errors.js';

/**
 * Answers a request Node could not read (too slow, headers too large, not HTTP), then closes
 * the connection. The URL is not known at this point, so the body carries both envelopes:
 * Tavily's `detail.error` for SDKs and the admin API's `error`.
 */
export function clientError(config: Pick<Config, 'requestTimeoutMs'>, log: FastifyBaseLogger) {
  return (err: NodeJS.ErrnoException, socket: import('node:stream').Duplex) => {
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    let status: number;
    let code: string;
    let message: string;
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      status = 408;
      code = 'request_timeout';
      message = `tavily-pool: the request did not arrive in full within ${config.requestTimeoutMs} ms (REQUEST_TIMEOUT_MS)`;
    } else if (err.code === 'HPE_HEADER_OVERFLOW') {
      status = 431;
      code = 'headers_too_large';
      message = 'tavily-pool: the request headers are larger than 16 KiB';
    } else {
      status = 400;
      code = 'bad_request';
      message = 'tavily-pool: the request is not valid HTTP';
    }
    log.debug({ code: err.code, status }, 'client connection refused');
    const body = JSON.stringify({ detail: { error: message }, error: { code, message } });
    if (socket.writable) {
      socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    }
    socket.destroy();
  };
}

/**
 * Errors and unknown routes in each family's envelope: `{"error": {"code", "message"}}` under
 * /api, Tavily's `{"detail": {"error"}}` elsewhere (the clients there are Tavily SDKs, which
 * show `detail.error`). A 5xx is logged; its message says nothing internal.
 */
export const errors = fp(
  async (app: FastifyInstance) => {
    app.setErrorHandler((err, req, reply) => {
      if (clientWentAway(err, req, reply)) return reply;
      const p = describeError(err);
      if (p.statusCode >= 500) req.log.error({ err }, 'request failed');
      return reply.code(p.statusCode).send({ error: { code: p.code, message: p.message } });
    });
    app.setNotFoundHandler((req, reply) => {
      const message = `no route ${req.method} ${req.url.split('?')[0]}`;
      if (req.url.startsWith('/api/')) return reply.code(404).send({ error: { code: 'not_found', message } });
      return reply.code(404).send({ detail: { error: message } });
    });
  },
  { name: 'errors' },
);

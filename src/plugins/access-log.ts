import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';

/** Query parameters whose values are credentials, whatever route they come to. */
const SECRET_PARAMS = /([?&](?:api_?key|apikey|key|token|access_token|auth|authorization|password|secret|tavilyApiKey)=)[^&#]*/gi;
/** Tavily keys, client tokens and admin tokens, wherever they appear in a URL. */
const SECRET_VALUES = /\b(tvly-|tpa_|tp_)[A-Za-z0-9_-]{4,}/g;

/** The URL as it may be logged: credential parameters and anything shaped like a key or token replaced. */
export function redactUrl(url: string): string {
  return url.replace(SECRET_PARAMS, '$1[redacted]').replace(SECRET_VALUES, '$1[redacted]');
}

type Level = 'debug' | 'info' | 'warn';

/**
 * One line per answered request (Fastify's own two lines a request are off), with the URL
 * redacted. Reads (the dashboard polls them) and the gateway's traffic are at debug; admin
 * changes and requests to unknown routes at info; server errors at warn (their cause is
 * logged where they happen).
 */
function levelOf(req: FastifyRequest, reply: FastifyReply): Level {
  if (reply.statusCode >= 500) return 'warn';
  const path = req.url;
  if (path.startsWith('/api/v1/admin/')) return req.method === 'GET' || req.method === 'HEAD' ? 'debug' : 'info';
  if (reply.statusCode === 404 && req.routeOptions.url === undefined) return 'info';
  return 'debug';
}

export function accessLog(app: FastifyInstance): void {
  // A callback hook, not an async one: no promise per request on the gateway's hot path.
  app.addHook('onResponse', (req, reply, done) => {
    const level = levelOf(req, reply);
    if ((req.log as unknown as Logger).isLevelEnabled(level)) {
      req.log[level](
        { req: { method: req.method, url: redactUrl(req.url), remote: req.ip }, res: { statusCode: reply.statusCode }, ms: Math.round(reply.elapsedTime * 10) / 10 },
        'request completed',
      );
    }
    done();
  });
}

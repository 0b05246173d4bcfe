import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { bearerToken } from '../crypto.js';
import { RefTo, TavilyError } from '../schemas/keys.js';
import { CLIENT_CLOSED, clientWentAway, describeError } from '../http/errors.js';
import { ENDPOINTS, ENDPOINT_NAMES, type EndpointName } from '../gateway/endpoints.js';
import { CACHE_HEADER, bypassAsked } from '../gateway/cache.js';
import { Cancellation, GatewayError, type Outcome } from '../gateway/core.js';
import type { TokenState } from '../gateway/tokens.js';
import { type DoorDeps, clientToken } from './token.js';

type Json = Record<string, unknown>;

const AnyObject = Type.Object({}, { additionalProperties: true });

const errorRef = RefTo(TavilyError);
const ERRORS = { 400: errorRef, 401: errorRef, 403: errorRef, 404: errorRef, 413: errorRef, 429: errorRef, 432: errorRef, 433: errorRef, 500: errorRef, 502: errorRef, 503: errorRef };

/** Headers the SDKs send that Tavily may use; everything else stays at the gateway. */
const FORWARDED_HEADERS = ['x-client-source', 'x-project-id', 'x-tavily-orgid', 'x-session-id', 'x-human-id', 'x-client-name'];

declare module 'fastify' {
  interface FastifyRequest {
    /** The client token, when the Authorization header named one (set before the body is read). */
    clientToken?: TokenState;
    /** The request reached the gateway core, which counts its answer in the metrics (or the door counted it). */
    reachedCore: boolean;
  }
  interface FastifyContextConfig {
    /** The Tavily endpoint a gateway route serves. */
    endpoint?: EndpointName;
  }
}

function tavilyError(reply: FastifyReply, status: number, message: string) {
  return reply.code(status).type('application/json').send(JSON.stringify({ detail: { error: message } }));
}

/** The client token: the Bearer header, or `api_key` in the body (or query) as older clients send it. */
function presentedToken(req: FastifyRequest, fields: { api_key?: unknown } | null): string | null {
  const bearer = bearerToken(req.headers.authorization);
  if (bearer) return bearer;
  return typeof fields?.api_key === 'string' && fields.api_key !== '' ? fields.api_key : null;
}

function forwardHeaders(req: FastifyRequest): Record<string, string> {
  const h: Record<string, string> = {};
  for (const name of FORWARDED_HEADERS) {
    const v = req.headers[name];
    if (typeof v === 'string') h[name] = v;
  }
  return h;
}


function cancelOnDisconnect(reply: FastifyReply): Cancellation {
  const c = new Cancellation();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) c.abort();
  });
  return c;
}

/** Writes the gateway's outcome as Tavily would have answered. */
function send(reply: FastifyReply, o: Outcome) {
  switch (o.kind) {
    case 'cancelled':
      return reply; // the client left: nothing to answer
    case 'stream':
      reply.raw.setHeader('x-accel-buffering', 'no');
      return reply.code(200).header('cache-control', 'no-cache').type(o.contentType).send(o.stream);
    case 'answer':
      if (o.cache) reply.header(CACHE_HEADER, o.cache);
      return reply.code(o.status).type(o.contentType).send(o.text);
  }
}

/**
 * The REST door: Tavily's routes at the server root, so that an SDK needs only its base URL
 * changed. Each route takes the token, hands the body to the gateway core and writes what
 * it answers; errors go out in Tavily's envelope.
 */
export const gatewayRoutes: FastifyPluginAsyncTypebox<DoorDeps> = async (app, door) => {
  const { gateway } = door;

  app.setErrorHandler((err, req, reply) => {
    if (clientWentAway(err, req, reply)) return reply;
    if (err instanceof GatewayError) {
      if (err.retryAfterS !== undefined) reply.header('retry-after', String(err.retryAfterS));
      if (err.close) reply.header('connection', 'close');
      return tavilyError(reply, err.statusCode, err.message);
    }
    const p = describeError(err);
    if (p.statusCode >= 500) req.log.error({ err }, 'gateway request failed');
    return tavilyError(reply, p.statusCode, p.message);
  });

  /** The calling token: from the Authorization header (checked before the body was read), or `api_key`. */
  const authenticate = (req: FastifyRequest, fields: { api_key?: unknown } | null): TokenState => {
    return req.clientToken ?? clientToken(door, req, presentedToken(req, fields));
  };

  app.decorateRequest('clientToken', undefined);
  app.decorateRequest('reachedCore', false);
  // Answers given here without the core (a body refused by validation, a token refused) are
  // counted too: every answer is in tavily_pool_requests_total.
  const countAtDoor = (req: FastifyRequest, status: number) => {
    const endpoint = req.routeOptions.config.endpoint;
    if (!endpoint || req.reachedCore) return;
    req.reachedCore = true; // counted once
    gateway.answeredAtDoor(endpoint, 'rest', status, req.clientToken ?? null);
  };
  app.addHook('onResponse', (req, reply, done) => {
    countAtDoor(req, reply.statusCode);
    done();
  });
  // A client that hangs up before its request was read gets no response (onResponse never
  // runs): counted as 499, nginx's "client closed request".
  app.addHook('onRequestAbort', (req, done) => {
    countAtDoor(req, CLIENT_CLOSED);
    done();
  });
  // A request whose Authorization header names no client token is answered at once, before
  // its body is read, and its connection closed: a client that is not one cannot hold a
  // socket open by trickling a body. (A token sent as api_key in the body is read with it.)
  app.addHook('onRequest', (req, _reply, done) => {
    const bearer = bearerToken(req.headers.authorization);
    if (bearer === null) return done();
    try {
      req.clientToken = clientToken(door, req, bearer);
    } catch (err) {
      return done(err as Error);
    }
    done();
  });

  for (const name of ENDPOINT_NAMES) {
    const spec = ENDPOINTS[name];
    if (spec.method !== 'POST' || !spec.body) continue;
    const endpoint: EndpointName = name;
    app.post(
      spec.route,
      {
        logLevel: 'warn',
        config: { endpoint },
        schema: {
          tags: ['gateway'],
          summary: spec.summary,
          body: spec.body,
          response: { 200: AnyObject, ...(spec.billing === 'on-poll' ? { 201: AnyObject } : {}), ...ERRORS },
        },
      },
      async (req, reply) => {
        const { api_key: _dropped, ...body } = req.body as Json;
        const token = authenticate(req, req.body as Json);
        req.reachedCore = true;
        return send(reply, await gateway.call({ token, endpoint, body, headers: forwardHeaders(req), signal: cancelOnDisconnect(reply), remote: req.ip, cache: bypassAsked(req.headers[CACHE_HEADER]) }));
      },
    );
  }

  app.get(
    ENDPOINTS['research.get'].route,
    {
      logLevel: 'warn',
      config: { endpoint: 'research.get' },
      schema: {
        tags: ['gateway'],
        summary: ENDPOINTS['research.get'].summary,
        // Tavily's request ids are UUIDs: visible ASCII only, so nothing odd reaches the database.
        params: Type.Object({ request_id: Type.String({ minLength: 1, maxLength: 200, pattern: '^[\\x21-\\x7e]+$', description: 'a request_id as Tavily returned it (visible ASCII characters)' }) }),
        querystring: Type.Object({ include_usage: Type.Optional(Type.Boolean()), api_key: Type.Optional(Type.String()) }, { additionalProperties: true }),
        response: { 200: AnyObject, 202: AnyObject, ...ERRORS },
      },
    },
    async (req, reply) => {
      const token = authenticate(req, req.query);
      req.reachedCore = true;
      const outcome = await gateway.call({
        token,
        endpoint: 'research.get',
        body: { include_usage: req.query.include_usage === true },
        requestId: req.params.request_id,
        headers: forwardHeaders(req),
        signal: cancelOnDisconnect(reply),
        remote: req.ip,
      });
      return send(reply, outcome);
    },
  );

  app.get(
    '/usage',
    {
      logLevel: 'warn',
      schema: {
        tags: ['gateway'],
        summary: 'The calling token’s own usage, in the shape of Tavily’s /usage',
        querystring: Type.Object({ api_key: Type.Optional(Type.String()) }, { additionalProperties: true }),
        response: { 200: AnyObject, ...ERRORS },
      },
    },
    async (req) => gateway.usage(authenticate(req, req.query)),
  );
};

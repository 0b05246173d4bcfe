import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { actorOf } from '../audit/audit.js';
import { CreateBody, PatchBody, TokenCreatedResponse, TokenListResponse, TokenObject } from '../schemas/tokens.js';
import { RefTo, RowId, withErrors } from '../schemas/keys.js';
import type { TokenService } from '../services/tokens.js';

const IdParams = Type.Object({ id: RowId() });

const tags = ['tokens'];

/** /tokens: the client tokens of the gateway. */
export const tokenRoutes: FastifyPluginAsyncTypebox<{ tokens: TokenService }> = async (app, { tokens }) => {
  app.post(
    '/tokens',
    {
      schema: {
        tags,
        summary: 'Create a client token (shown once)',
        body: CreateBody,
        response: withErrors({ 201: TokenCreatedResponse }),
      },
    },
    async (req, reply) => {
      const made = await tokens.create(actorOf(req), req.body);
      req.log.info({ token_id: made.item.id }, 'client token created');
      return reply.code(201).send(made);
    },
  );

  app.get(
    '/tokens',
    {
      schema: {
        tags,
        summary: 'List client tokens, with this month’s spend',
        querystring: Type.Object({ include_revoked: Type.Boolean({ default: false }) }, { additionalProperties: false }),
        response: withErrors({ 200: TokenListResponse }),
      },
    },
    async (req) => ({ items: await tokens.list(req.query.include_revoked) }),
  );

  app.get(
    '/tokens/:id',
    { schema: { tags, summary: 'One client token', params: IdParams, response: withErrors({ 200: RefTo(TokenObject) }) } },
    async (req) => tokens.get(req.params.id),
  );

  app.patch(
    '/tokens/:id',
    {
      schema: { tags, summary: 'Rename a token, or change its budget, RPM limit or scopes (endpoints, networks, expiry, caps)', params: IdParams, body: PatchBody, response: withErrors({ 200: RefTo(TokenObject) }) },
    },
    async (req) => tokens.update(actorOf(req), req.params.id, req.body),
  );

  app.delete(
    '/tokens/:id',
    { schema: { tags, summary: 'Revoke a token (its log rows stay)', params: IdParams, response: withErrors({ 200: RefTo(TokenObject) }) } },
    async (req) => {
      const revoked = await tokens.revoke(actorOf(req), req.params.id);
      req.log.info({ token_id: revoked.id }, 'client token revoked');
      return revoked;
    },
  );
};

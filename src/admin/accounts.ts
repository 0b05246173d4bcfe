import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { actorOf } from '../audit/audit.js';
import type { AccountService } from '../services/accounts.js';
import {
  AccountCreateBody,
  AccountDetail,
  AccountIdParams,
  AccountKeysBody,
  AccountListQuery,
  AccountListResponse,
  AccountPatchBody,
  SuggestionsResponse,
  withErrors,
} from '../schemas/keys.js';

const tags = ['tavily-accounts'];

/** /accounts: named groups of keys that share one Tavily account's credits. */
export const accountRoutes: FastifyPluginAsyncTypebox<{ accounts: AccountService }> = async (app, { accounts }) => {
  app.get(
    '/accounts',
    {
      schema: {
        tags,
        summary: 'List accounts',
        description: 'Named groups of keys that share one Tavily account’s credits, with what they can spend (counted once), their cycle and usage nobody here spent.',
        querystring: AccountListQuery,
        response: withErrors({ 200: AccountListResponse }),
      },
    },
    async (req) => accounts.list({ search: req.query.q, limit: req.query.limit, cursor: req.query.cursor }),
  );

  app.get(
    '/accounts/suggestions',
    {
      schema: {
        tags,
        summary: 'Keys that look like one account',
        description:
          'Keys whose account figures are identical and say something (the same plan, the same non-zero plan usage, the same limits) ' +
          'and were read in the same refresh. Nothing is merged until an admin confirms: POST /accounts with the key_ids, ' +
          'or POST /accounts/{account_id}/keys when some of them are in an account already.',
        response: withErrors({ 200: SuggestionsResponse }),
      },
    },
    async () => ({ items: await accounts.suggestions() }),
  );

  app.post(
    '/accounts',
    {
      schema: {
        tags,
        summary: 'Make an account, with keys',
        description: 'The keys (optional) join it, leaving any other account. Its figures come from its keys’ latest /usage answer.',
        body: AccountCreateBody,
        response: withErrors({ 201: AccountDetail }),
      },
    },
    async (req, reply) => {
      const made = await accounts.create(actorOf(req), req.body.name, req.body.key_ids ?? []);
      req.log.info({ account_id: made.id, keys: made.key_list.length }, 'account created');
      return reply.code(201).send(made);
    },
  );

  app.get(
    '/accounts/:id',
    { schema: { tags, summary: 'One account, with its keys', params: AccountIdParams, response: withErrors({ 200: AccountDetail }) } },
    async (req) => accounts.get(req.params.id),
  );

  app.patch(
    '/accounts/:id',
    {
      schema: {
        tags,
        summary: 'Rename an account, or dismiss its usage-drift finding',
        params: AccountIdParams,
        body: AccountPatchBody,
        response: withErrors({ 200: AccountDetail }),
      },
    },
    async (req) => accounts.update(actorOf(req), req.params.id, req.body),
  );

  app.delete(
    '/accounts/:id',
    {
      schema: { tags, summary: 'Delete an account (its keys stay, each its own account)', params: AccountIdParams, response: withErrors({ 204: Type.Null() }) },
    },
    async (req, reply) => {
      await accounts.delete(actorOf(req), req.params.id);
      req.log.info({ account_id: req.params.id }, 'account deleted');
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/accounts/:id/keys',
    {
      schema: {
        tags,
        summary: 'Add keys to an account',
        description: 'The keys leave any other account. An unknown id changes nothing (404).',
        params: AccountIdParams,
        body: AccountKeysBody,
        response: withErrors({ 200: AccountDetail }),
      },
    },
    async (req) => accounts.addKeys(actorOf(req), req.params.id, req.body.ids),
  );
};

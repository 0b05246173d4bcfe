import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { AppContext } from '../context.js';
import type { AccountListRow, Executor } from '../db/repositories/accounts.js';
import { ApiError } from './errors.js';
import { driftOf } from '../db/figures.js';
import { leastKnown } from '../pool/pool.js';
import { keyView } from './keys.js';
import {
  AccountCreateBody,
  AccountDetail,
  AccountIdParams,
  AccountKeysBody,
  AccountListQuery,
  AccountListResponse,
  type AccountObject,
  AccountPatchBody,
  SuggestionsResponse,
  withErrors,
} from './schemas.js';

const tags = ['tavily-accounts'];
const LISTED_KEYS = 1000;

function notFound(id: number): ApiError {
  return new ApiError(404, 'account_not_found', `no account with id ${id}`);
}

function nameTaken(name: string): ApiError {
  return new ApiError(409, 'account_exists', `an account named "${name}" exists already: add the keys to it (POST /accounts/{id}/keys), or choose another name`);
}

export function accountView(row: AccountListRow): AccountObject {
  // Counted once: the least of the account's room and what its keys' own figures add up to.
  const remaining = leastKnown(row.remaining, row.keys_remaining);
  return {
    id: row.id,
    name: row.name,
    keys: { total: row.keys, active: row.active, exhausted: row.exhausted, invalid: row.invalid, disabled: row.disabled },
    remaining: row.keys - row.invalid - row.disabled > 0 ? remaining : 0,
    plan: row.plan,
    plan_usage: row.plan_usage,
    plan_limit: row.plan_limit,
    paygo_usage: row.paygo_usage,
    paygo_limit: row.paygo_limit,
    spent_7d: row.spent_7d,
    last_refreshed_at: row.last_refreshed_at,
    cycle_started_at: row.cycle_started_at,
    drift: driftOf(row),
    created_at: row.created_at,
  };
}

/**
 * Puts keys into an account (null: out of any), in the caller's transaction, and counts the
 * figures of every account involved again. Returns the keys that exist and the accounts' rooms.
 */
export async function assignKeys(ctx: AppContext, ids: readonly number[], accountId: number | null, trx: Executor): Promise<AccountChange> {
  if (accountId !== null && !(await ctx.accounts.exists(accountId, trx))) throw notFound(accountId);
  const { ids: done, left } = await ctx.accounts.assign(ids, accountId, trx);
  const rooms = await ctx.accounts.recompute(accountId === null ? left : [accountId, ...left], trx);
  return { keyIds: done, rooms };
}

/** As assignKeys, but every key must exist: an unknown id is a 404, and the caller's transaction rolls back. */
async function assignAll(ctx: AppContext, ids: readonly number[], accountId: number, trx: Executor): Promise<AccountChange> {
  const change = await assignKeys(ctx, ids, accountId, trx);
  if (change.keyIds.length < ids.length) {
    const have = new Set(change.keyIds);
    throw new ApiError(404, 'key_not_found', `no Tavily key with id ${ids.filter((k) => !have.has(k)).slice(0, 10).join(', ')}; nothing was changed`);
  }
  return change;
}

/** Keys whose account changed, and the rooms of the accounts involved. */
export interface AccountChange {
  keyIds: number[];
  rooms?: ReadonlyMap<number, number | null>;
}

/** Runs `fn` in a transaction; once it commits, the pool (here and on the other instances) takes the keys and rooms that changed. */
export async function changeAccounts<T>(ctx: AppContext, fn: (trx: Executor) => Promise<AccountChange & { result: T }>): Promise<T> {
  const { result, keyIds, rooms } = await ctx.database.db.transaction().execute(fn);
  if (keyIds.length > 0) await ctx.keysChanged(keyIds);
  if (rooms && rooms.size > 0) await ctx.accountsChanged(rooms);
  return result;
}

export const accountRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const ctx = app.ctx;

  const detail = async (id: number) => {
    const row = await ctx.accounts.getById(id);
    if (!row) throw notFound(id);
    const keys = await ctx.keys.ofAccount(id, LISTED_KEYS);
    return { ...accountView(row), key_list: keys.map(keyView) };
  };

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
    async (req) => {
      let after: number | undefined;
      if (req.query.cursor !== undefined) {
        after = Number(req.query.cursor);
        if (!Number.isInteger(after) || after < 0) throw new ApiError(400, 'invalid_cursor', 'cursor is not one this API returned');
      }
      const page = await ctx.accounts.list({ search: req.query.q?.trim() || undefined, limit: req.query.limit, after });
      return { items: page.rows.map(accountView), next_cursor: page.next === null ? null : String(page.next), total: page.total };
    },
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
    async () => ({ items: await ctx.accounts.suggestions() }),
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
      const name = req.body.name.trim();
      const keyIds = [...new Set(req.body.key_ids ?? [])];
      const id = await changeAccounts(ctx, async (trx) => {
        const row = await ctx.accounts.create(name, trx);
        if (!row) throw nameTaken(name);
        // Nothing is made when a key is missing: the admin's list was not what they thought.
        const change: AccountChange = keyIds.length > 0 ? await assignAll(ctx, keyIds, row.id, trx) : { keyIds: [] };
        await ctx.audit.record(req, trx, 'accounts.create', { id: row.id, name, keys: keyIds.length });
        return { result: row.id, ...change };
      });
      req.log.info({ account_id: id, keys: keyIds.length }, 'account created');
      return reply.code(201).send(await detail(id));
    },
  );

  app.get(
    '/accounts/:id',
    { schema: { tags, summary: 'One account, with its keys', params: AccountIdParams, response: withErrors({ 200: AccountDetail }) } },
    async (req) => detail(req.params.id),
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
    async (req) => {
      const id = req.params.id;
      const name = req.body.name?.trim();
      await ctx.database.db.transaction().execute(async (trx) => {
        const outcome = await ctx.accounts.update(id, { name, clearDrift: req.body.drift === null }, trx);
        if (outcome === 'not_found') throw notFound(id);
        if (outcome === 'name_taken') throw nameTaken(name!);
        await ctx.audit.record(req, trx, 'accounts.update', { id, fields: Object.keys(req.body) });
      });
      return detail(id);
    },
  );

  app.delete(
    '/accounts/:id',
    {
      schema: { tags, summary: 'Delete an account (its keys stay, each its own account)', params: AccountIdParams, response: withErrors({ 204: Type.Null() }) },
    },
    async (req, reply) => {
      const id = req.params.id;
      await changeAccounts(ctx, async (trx) => {
        const members = await ctx.accounts.delete(id, trx);
        if (members === null) throw notFound(id);
        await ctx.audit.record(req, trx, 'accounts.delete', { id, keys: members.length });
        return { result: null, keyIds: members };
      });
      req.log.info({ account_id: id }, 'account deleted');
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
    async (req) => {
      const id = req.params.id;
      const ids = [...new Set(req.body.ids)];
      await changeAccounts(ctx, async (trx) => {
        const change = await assignAll(ctx, ids, id, trx);
        await ctx.audit.record(req, trx, 'accounts.add_keys', { id, keys: ids.slice(0, 1000) });
        return { result: null, ...change };
      });
      return detail(id);
    },
  );
};

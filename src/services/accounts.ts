import type { Actor, AuditLog } from '../audit/audit.js';
import type { ChangeFeed } from '../cluster/changes.js';
import type { Db } from '../db/database.js';
import type { AccountRepository, Executor } from '../db/repositories/accounts.js';
import type { KeyRepository } from '../db/repositories/keys.js';
import { ApiError } from '../http/api-error.js';
import type { AccountObject, KeyObject, Suggestion } from '../schemas/keys.js';
import { accountView, keyView } from './views.js';

/** Keys listed with an account. */
const LISTED_KEYS = 1000;

function notFound(id: number): ApiError {
  return new ApiError(404, 'account_not_found', `no account with id ${id}`);
}

function nameTaken(name: string): ApiError {
  return new ApiError(409, 'account_exists', `an account named "${name}" exists already: add the keys to it (POST /accounts/{id}/keys), or choose another name`);
}

/** Keys whose account changed, and the rooms of the accounts involved. */
export interface AccountChange {
  keyIds: number[];
  rooms?: ReadonlyMap<number, number | null>;
}

export type AccountDetail = AccountObject & { key_list: KeyObject[] };

/**
 * Tavily accounts: keys that share one balance. Every change runs in one transaction with its
 * audit row; once it commits, the pool (here and on the other instances) takes the keys and
 * rooms that changed.
 */
export class AccountService {
  constructor(
    private readonly d: {
      db: Db;
      accounts: AccountRepository;
      keys: KeyRepository;
      audit: AuditLog;
      changes: ChangeFeed;
    },
  ) {}

  async list(q: { search?: string; limit: number; cursor?: string }): Promise<{ items: AccountObject[]; next_cursor: string | null; total: number }> {
    let after: number | undefined;
    if (q.cursor !== undefined) {
      after = Number(q.cursor);
      if (!Number.isInteger(after) || after < 0) throw new ApiError(400, 'invalid_cursor', 'cursor is not one this API returned');
    }
    const page = await this.d.accounts.list({ search: q.search?.trim() || undefined, limit: q.limit, after });
    return { items: page.rows.map(accountView), next_cursor: page.next === null ? null : String(page.next), total: page.total };
  }

  async suggestions(): Promise<Suggestion[]> {
    return this.d.accounts.suggestions();
  }

  async get(id: number): Promise<AccountDetail> {
    const row = await this.d.accounts.getById(id);
    if (!row) throw notFound(id);
    const keys = await this.d.keys.ofAccount(id, LISTED_KEYS);
    return { ...accountView(row), key_list: keys.map(keyView) };
  }

  /** Makes an account; the keys (all of which must exist) join it, leaving any other. */
  async create(actor: Actor, name: string, keyIds: readonly number[]): Promise<AccountDetail> {
    const trimmed = name.trim();
    const ids = [...new Set(keyIds)];
    const id = await this.change(async (trx) => {
      const row = await this.d.accounts.create(trimmed, trx);
      if (!row) throw nameTaken(trimmed);
      // Nothing is made when a key is missing: the admin's list was not what they thought.
      const change: AccountChange = ids.length > 0 ? await this.#assignAll(ids, row.id, trx) : { keyIds: [] };
      await this.d.audit.record(actor, trx, 'accounts.create', { id: row.id, name: trimmed, keys: ids.length });
      return { result: row.id, ...change };
    });
    return this.get(id);
  }

  /** Renames an account, or dismisses its usage-drift finding. */
  async update(actor: Actor, id: number, patch: { name?: string; drift?: null }): Promise<AccountDetail> {
    const name = patch.name?.trim();
    await this.d.db.transaction().execute(async (trx) => {
      const outcome = await this.d.accounts.update(id, { name, clearDrift: patch.drift === null }, trx);
      if (outcome === 'not_found') throw notFound(id);
      if (outcome === 'name_taken') throw nameTaken(name!);
      await this.d.audit.record(actor, trx, 'accounts.update', { id, fields: Object.keys(patch) });
    });
    return this.get(id);
  }

  /** Deletes an account; its keys stay, each its own account. */
  async delete(actor: Actor, id: number): Promise<void> {
    await this.change(async (trx) => {
      const members = await this.d.accounts.delete(id, trx);
      if (members === null) throw notFound(id);
      await this.d.audit.record(actor, trx, 'accounts.delete', { id, keys: members.length });
      return { result: null, keyIds: members };
    });
  }

  /** Adds keys to an account (they leave any other); an unknown id changes nothing (404). */
  async addKeys(actor: Actor, id: number, keyIds: readonly number[]): Promise<AccountDetail> {
    const ids = [...new Set(keyIds)];
    await this.change(async (trx) => {
      const change = await this.#assignAll(ids, id, trx);
      await this.d.audit.record(actor, trx, 'accounts.add_keys', { id, keys: ids.slice(0, 1000) });
      return { result: null, ...change };
    });
    return this.get(id);
  }

  /**
   * Puts keys into an account (null: out of any), in the caller's transaction, and counts the
   * figures of every account involved again. Returns the keys that exist and the accounts' rooms.
   */
  async assign(ids: readonly number[], accountId: number | null, trx: Executor): Promise<AccountChange> {
    if (accountId !== null && !(await this.d.accounts.exists(accountId, trx))) throw notFound(accountId);
    const { ids: done, left } = await this.d.accounts.assign(ids, accountId, trx);
    const rooms = await this.d.accounts.recompute(accountId === null ? left : [accountId, ...left], trx);
    return { keyIds: done, rooms };
  }

  /** The account named `name`, made when there is none (in the caller's transaction). */
  async ensureName(name: string, trx: Executor): Promise<number> {
    return (await this.d.accounts.ensureNames([name], trx)).get(name)!;
  }

  /** Runs `fn` in a transaction; once it commits, the pool (here and on the other instances) takes the keys and rooms that changed. */
  async change<T>(fn: (trx: Executor) => Promise<AccountChange & { result: T }>): Promise<T> {
    const { result, keyIds, rooms } = await this.d.db.transaction().execute(fn);
    if (keyIds.length > 0) await this.d.changes.keys(keyIds);
    if (rooms && rooms.size > 0) await this.d.changes.accounts(rooms);
    return result;
  }

  /** As assign, but every key must exist: an unknown id is a 404, and the caller's transaction rolls back. */
  async #assignAll(ids: readonly number[], accountId: number, trx: Executor): Promise<AccountChange> {
    const change = await this.assign(ids, accountId, trx);
    if (change.keyIds.length < ids.length) {
      const have = new Set(change.keyIds);
      throw new ApiError(404, 'key_not_found', `no Tavily key with id ${ids.filter((k) => !have.has(k)).slice(0, 10).join(', ')}; nothing was changed`);
    }
    return change;
  }
}

import { Readable } from 'node:stream';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { KeyDecryptError } from '../crypto.js';
import { type KeyCursor, type KeyListRow, apiStatus } from '../db/repositories/keys.js';
import type { KeyRow } from '../db/schema.js';
import { driftOf } from '../db/figures.js';
import { burnWindowStart } from '../pool/forecast.js';
import { effectiveRemaining } from '../pool/pool.js';
import { RefreshWriteError } from '../quota/refresh.js';
import { forEachSliced, yieldToLoop } from '../slices.js';
import { count } from '../text.js';
import { ApiError } from './errors.js';
import { KeyText, countedJsonParser, keyTextParser } from './import-body.js';
import { type AccountChange, assignKeys, changeAccounts } from './accounts.js';
import { importKeys } from './import.js';
import {
  BulkBody,
  BulkResponse,
  ExportQuery,
  ImportJsonBody,
  ImportQuery,
  ImportResponse,
  KeyDetail,
  KeyIdParams,
  KeyObject,
  MAX_IMPORT_KEYS,
  ListQuery,
  ListResponse,
  PatchBody,
  RefreshBody,
  RefTo,
  RefreshResponse,
  RefreshStatusResponse,
  SummaryResponse,
  withErrors,
} from './schemas.js';

/** The key's rest, while it lasts: until when, and why. */
function resting(row: KeyRow): Pick<KeyObject, 'cooldown_until' | 'cooldown_reason'> {
  const now = row.cooldown_until !== null && Date.parse(row.cooldown_until) > Date.now();
  return { cooldown_until: now ? row.cooldown_until : null, cooldown_reason: now ? row.cooldown_reason : null };
}

export function keyView(row: KeyListRow): KeyObject {
  return {
    id: row.id,
    label: row.label,
    key_masked: row.key_masked,
    status: apiStatus(row),
    // What the key can spend: its own figure, capped by its account's shared room.
    remaining_quota: effectiveRemaining({ remaining: row.remaining_quota, account: row.account_id === null ? null : { remaining: row.account_remaining } }),
    key_usage: row.key_usage,
    key_limit: row.key_limit,
    plan: row.plan,
    plan_usage: row.plan_usage,
    plan_limit: row.plan_limit,
    paygo_usage: row.paygo_usage,
    paygo_limit: row.paygo_limit,
    last_refreshed_at: row.last_refreshed_at,
    last_checked_at: row.last_checked_at,
    last_error: row.last_error,
    last_used_at: row.last_used_at,
    ...resting(row),
    account_id: row.account_id,
    account_name: row.account_name,
    cycle_started_at: row.cycle_started_at,
    drift: driftOf(row),
    created_at: row.created_at,
    updated_at: row.updated_at,
  };
}

function encodeCursor(sort: string, c: KeyCursor): string {
  return Buffer.from(JSON.stringify({ s: sort, v: c.v, id: c.id })).toString('base64url');
}

function decodeCursor(sort: string, text: string): KeyCursor {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    throw new ApiError(400, 'invalid_cursor', 'cursor is not one this API returned');
  }
  if (typeof parsed !== 'object' || parsed === null) {
    throw new ApiError(400, 'invalid_cursor', 'cursor is not one this API returned');
  }
  const c = parsed as { s?: unknown; v?: unknown; id?: unknown };
  if (c.s !== sort) throw new ApiError(400, 'invalid_cursor', `cursor belongs to sort=${String(c.s)}, not sort=${sort}`);
  const valueOk = sort === 'remaining_quota' ? typeof c.v === 'number' : typeof c.v === 'string';
  if (!Number.isInteger(c.id) || !valueOk) throw new ApiError(400, 'invalid_cursor', 'cursor is not one this API returned');
  return { v: c.v as number | string, id: c.id as number };
}

/** Keys per page of the export. */
const EXPORT_PAGE = 2000;

function notFound(id: number): ApiError {
  return new ApiError(404, 'key_not_found', `no Tavily key with id ${id}`);
}

const tags = ['tavily-keys'];

/**
 * Text bodies arrive parsed, as the keys keyTextParser found in them: the schema (which only
 * documents them) sets no type to check.
 */
const TextBody = Type.Unsafe<KeyText>({ description: 'any text (a .txt or .csv file, a pasted list): every tvly-… token in it is taken' });

/** POST /tavily-keys, with the body parsers that count keys as they arrive. */
const importRoute: FastifyPluginAsyncTypebox = async (app) => {
  const ctx = app.ctx;
  // The key cap is enforced while the body arrives, whatever its format. Files exported from
  // spreadsheets arrive as text/csv: keys are found in them as in text/plain.
  app.removeContentTypeParser(['application/json', 'text/plain']);
  app.addContentTypeParser('application/json', countedJsonParser(MAX_IMPORT_KEYS));
  app.addContentTypeParser(['text/plain', 'text/csv'], keyTextParser(MAX_IMPORT_KEYS));

  app.post(
    '/tavily-keys',
    {
      bodyLimit: ctx.config.importBodyLimit,
      // Keys must match the key pattern (no NUL can pass it); the label is stored as sent.
      config: { storedBodyFields: ['label'] },
      schema: {
        tags,
        summary: 'Add keys',
        description:
          'JSON `{"keys": [...], "label"?}`, or a text/plain (or text/csv) body from which every `tvly-…` token is taken. ' +
          'Up to 100,000 keys, counted while the body is read (more: 413 too_many_keys, nothing added), inserted in one transaction.',
        querystring: ImportQuery,
        body: {
          content: {
            'application/json': { schema: ImportJsonBody },
            'text/plain': { schema: TextBody },
            'text/csv': { schema: TextBody },
          },
        },
        response: withErrors({ 201: ImportResponse }),
      },
    },
    async (req, reply) => {
      const body = req.body as unknown;
      let inputs: string[];
      let accounts: (string | null)[];
      let labels: (string | null)[];
      let label = req.query.label ?? null;
      let account = req.query.account?.trim() ?? null;
      if (body instanceof KeyText) {
        inputs = body.keys;
        accounts = body.accounts;
        labels = body.labels;
        if (inputs.length === 0) throw new ApiError(400, 'no_keys', 'the text holds no Tavily key (tvly-…)');
      } else if (typeof body === 'object' && body !== null && Array.isArray((body as { keys?: unknown }).keys)) {
        const json = body as { keys: (string | { key: string; account?: string; label?: string })[]; label?: string; account?: string };
        inputs = json.keys.map((k) => (typeof k === 'string' ? k : k.key));
        accounts = json.keys.map((k) => (typeof k === 'string' ? null : (k.account?.trim() ?? null)));
        labels = json.keys.map((k) => (typeof k === 'string' ? null : (k.label?.trim() || null)));
        label = json.label ?? label;
        account = json.account?.trim() ?? account;
      } else {
        throw new ApiError(400, 'invalid_request', 'send JSON {"keys": [...]} or a text/plain body');
      }
      const result = await importKeys(ctx, {
        inputs,
        accounts,
        account,
        labels,
        label,
        validate: req.query.validate,
        audit: (trx, added) => ctx.audit.record(req, trx, 'keys.add', { added: added.length, ids: added.slice(0, 1000), label, account: account ?? null, validate: req.query.validate }),
      });
      if (result.added > 0) await ctx.keysChanged(result.addedIds);
      const { addedIds, accountIds: _, ...answer } = result;
      if (addedIds.length > 0 && !req.query.validate && ctx.config.validateOnImport) {
        // The new keys are checked against /usage once the answer is out (the refresh's
        // concurrency bound and single-flight rules apply), so that the pool learns which are
        // dead before traffic finds them.
        reply.raw.once('finish', () => {
          ctx.refresher.refresh({ ids: addedIds }).then(
            (r) => req.log.info({ keys: r.total, failed: r.failed_count }, 'new keys checked against /usage'),
            (err: unknown) => req.log.error({ err }, 'checking new keys against /usage failed; the scheduled refresh will'),
          );
        });
      }
      return reply.code(201).send({ ...answer, items: result.items.map(keyView) });
    },
  );

};

export const keyRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const ctx = app.ctx;
  /** The key's text (from the pool's cache of decrypted keys when it is there), or null when it cannot be decrypted. */
  const openKey = (id: number, sealed: string): string | null => {
    try {
      return ctx.plainKeys.get(id, sealed);
    } catch (err) {
      if (err instanceof KeyDecryptError) return null;
      throw err;
    }
  };

  await app.register(importRoute);

  app.get(
    '/tavily-keys',
    {
      schema: {
        tags,
        summary: 'List keys',
        description: 'Filter by status, search the label or the key’s last characters, sort, and page with next_cursor.',
        querystring: ListQuery,
        response: withErrors({ 200: ListResponse }),
      },
    },
    async (req) => {
      const q = req.query;
      const page = await ctx.keys.list({
        status: q.status,
        accountId: q.account_id,
        drift: q.drift,
        search: q.q?.trim() || undefined,
        sort: q.sort,
        order: q.order,
        limit: q.limit,
        cursor: q.cursor ? decodeCursor(q.sort, q.cursor) : undefined,
      });
      return {
        items: page.rows.map(keyView),
        next_cursor: page.next ? encodeCursor(q.sort, page.next) : null,
        total: page.total,
      };
    },
  );

  app.get(
    '/tavily-keys/export',
    {
      schema: {
        tags,
        summary: 'Export keys as text, one a line',
        description: 'The only response that shows keys in full.',
        querystring: ExportQuery,
        produces: ['text/plain'],
        response: withErrors({ 200: Type.String() }),
      },
    },
    async (req, reply) => {
      const status = req.query.status;
      // The first page is read and opened before anything is sent: a wrong ENCRYPTION_KEY is
      // still a clean 500, not a truncated download.
      await ctx.audit.record(req, ctx.database.db, 'keys.export', { status: status ?? 'all' });
      const first = await ctx.keys.sealedKeysPage(status, 0, EXPORT_PAGE);
      const firstLines = first.map((r) => openKey(r.id, r.key_ciphertext));
      const bad = firstLines.filter((l) => l === null).length;
      if (bad > 0) throw new ApiError(500, 'decrypt_failed', `${count(bad, 'key')} cannot be decrypted: was ENCRYPTION_KEY changed?`);
      const log = req.log;
      // Then page by page, decrypting in slices: 300,000 keys stream out without holding the
      // event loop, and without the whole export in memory.
      async function* lines(): AsyncGenerator<string> {
        let exported = 0;
        let page = first;
        let text = firstLines;
        for (;;) {
          if (text.length > 0) yield `${text.join('\n')}\n`;
          exported += text.length;
          if (page.length < EXPORT_PAGE) break;
          // SQLite answers synchronously: without this, the pages would follow one another in
          // microtasks and the event loop would not turn until the last one.
          await yieldToLoop();
          page = await ctx.keys.sealedKeysPage(status, page.at(-1)!.id, EXPORT_PAGE);
          const next: string[] = [];
          await forEachSliced(page, (r) => {
            const plain = openKey(r.id, r.key_ciphertext);
            if (plain === null) throw new ApiError(500, 'decrypt_failed', `key ${r.id} cannot be decrypted`);
            next.push(plain);
          });
          text = next;
        }
        log.info({ keys: exported }, 'keys exported');
      }
      const stream = Readable.from(lines());
      // A failure mid-way (a key that cannot be opened, the database gone) ends the download
      // unfinished, which the client sees, rather than as a shorter list.
      stream.on('error', (err) => log.error({ err }, 'key export failed mid-way; the download was cut'));
      return reply
        .type('text/plain; charset=utf-8')
        .header('content-disposition', 'attachment; filename="tavily-keys.txt"')
        // The schema says what the body is (text); the type provider cannot say "streamed".
        .send(stream as unknown as string);
    },
  );

  app.post(
    '/tavily-keys/refresh-quota',
    {
      schema: {
        tags,
        summary: 'Refresh quotas from Tavily’s /usage',
        description:
          'One query loads the keys, the /usage calls run concurrently (REFRESH_CONCURRENCY), and all results are ' +
          'written in one transaction. A request that arrives while a covering refresh runs gets that run’s result.',
        body: RefreshBody,
        response: withErrors({ 200: RefTo(RefreshResponse) }),
      },
      // The body is optional: no body means "every key".
      preValidation: async (req) => {
        req.body ??= {};
      },
    },
    async (req) => {
      await ctx.audit.record(req, ctx.database.db, 'keys.refresh', { ids: req.body.ids?.slice(0, 1000) ?? 'all', stale_after_s: req.body.stale_after_s ?? null });
      try {
        return await ctx.refresher.refresh({ ids: req.body.ids, staleAfterS: req.body.stale_after_s });
      } catch (err) {
        if (err instanceof RefreshWriteError) throw new ApiError(500, 'refresh_write_failed', err.message);
        throw err;
      }
    },
  );

  app.get(
    '/tavily-keys/refresh-quota',
    {
      schema: {
        tags,
        summary: 'Progress of the running refresh, and the last result',
        response: withErrors({ 200: RefreshStatusResponse }),
      },
    },
    async () => ({ progress: ctx.refresher.progress, last: ctx.refresher.lastResult }),
  );

  app.post(
    '/tavily-keys/bulk',
    {
      bodyLimit: ctx.config.importBodyLimit,
      schema: {
        tags,
        summary: 'Enable, disable or delete many keys',
        body: BulkBody,
        response: withErrors({ 200: BulkResponse }),
      },
    },
    async (req) => {
      const { action, ids } = req.body;
      const unique = [...new Set(ids)];
      if (action === 'assign' && req.body.account_id === undefined && req.body.account === undefined) {
        throw new ApiError(400, 'invalid_request', 'assign needs account_id (an account, or null for none) or account (a name)');
      }
      if (action !== 'assign' && (req.body.account_id !== undefined || req.body.account !== undefined)) {
        throw new ApiError(400, 'invalid_request', `account_id and account go with action "assign", not "${action}"`);
      }
      const done = await changeAccounts(ctx, async (trx): Promise<AccountChange & { result: number[] }> => {
        let change: AccountChange;
        if (action === 'delete') {
          // Their accounts' rooms stay as they are: what an account can spend does not grow when a key goes.
          change = { keyIds: await ctx.keys.deleteMany(unique, trx) };
        } else if (action !== 'assign') {
          change = { keyIds: await ctx.keys.setEnabled(unique, action === 'enable', trx) };
        } else {
          const name = req.body.account?.trim();
          const accountId = name !== undefined ? (await ctx.accounts.ensureNames([name], trx)).get(name)! : req.body.account_id!;
          change = await assignKeys(ctx, unique, accountId, trx);
        }
        await ctx.audit.record(req, trx, 'keys.bulk', { action, affected: change.keyIds.length, ids: change.keyIds.slice(0, 1000), ...(action === 'assign' ? { account_id: req.body.account_id ?? null, account: req.body.account ?? null } : {}) });
        return { result: change.keyIds, ...change };
      });
      const hit = new Set(done);
      req.log.info({ action, affected: done.length }, 'bulk key change');
      return { action, affected: done.length, not_found: unique.filter((id) => !hit.has(id)) };
    },
  );

  app.get(
    '/tavily-keys/:id',
    {
      schema: { tags, summary: 'One key', params: KeyIdParams, response: withErrors({ 200: KeyDetail }) },
    },
    async (req) => {
      const row = await ctx.keys.getById(req.params.id);
      if (!row) throw notFound(req.params.id);
      return { ...keyView(row), endpoint_usage: row.endpoint_usage ? JSON.parse(row.endpoint_usage) : null };
    },
  );

  app.patch(
    '/tavily-keys/:id',
    {
      schema: {
        tags,
        summary: 'Change a key’s label, or enable or disable it',
        params: KeyIdParams,
        body: PatchBody,
        response: withErrors({ 200: RefTo(KeyObject) }),
      },
    },
    async (req) => {
      const { account_id: accountId, drift, ...patch } = req.body;
      const id = req.params.id;
      await changeAccounts(ctx, async (trx): Promise<AccountChange & { result: null }> => {
        if (Object.keys(patch).length > 0 || drift === null) {
          if (!(await ctx.keys.update(id, { ...patch, clearDrift: drift === null }, trx))) throw notFound(id);
        }
        await ctx.audit.record(req, trx, 'keys.update', { id, fields: Object.keys(req.body) });
        if (accountId !== undefined) {
          const change = await assignKeys(ctx, [id], accountId, trx);
          if (change.keyIds.length === 0) throw notFound(id);
          return { result: null, ...change };
        }
        return { result: null, keyIds: [id] };
      });
      return keyView((await ctx.keys.getById(id))!);
    },
  );

  app.delete(
    '/tavily-keys/:id',
    {
      schema: { tags, summary: 'Delete a key', params: KeyIdParams, response: withErrors({ 204: Type.Null() }) },
    },
    async (req, reply) => {
      const gone = await ctx.database.db.transaction().execute(async (trx) => {
        const [id] = await ctx.keys.deleteMany([req.params.id], trx);
        if (id === undefined) throw notFound(req.params.id);
        await ctx.audit.record(req, trx, 'keys.delete', { id });
        return id;
      });
      await ctx.keysChanged([gone]);
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/summary',
    { schema: { tags: ['summary'], summary: 'Keys by status, credits left, last refresh', response: withErrors({ 200: SummaryResponse }) } },
    async () => {
      const [s, spent7d] = await Promise.all([ctx.keys.summary(), ctx.logs.creditsSince(burnWindowStart())]);
      return {
        keys: { total: s.total, by_status: s.by_status },
        total_remaining: s.total_remaining,
        total_limit: s.total_limit,
        unknown_quota: s.unknown_quota,
        spent_7d: spent7d,
        accounts: s.accounts,
        last_refreshed_at: s.last_refreshed_at,
        refresh: { running: ctx.refresher.running, last: ctx.refresher.lastResult },
      };
    },
  );
};

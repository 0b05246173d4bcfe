import { Readable } from 'node:stream';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { actorOf } from '../audit/audit.js';
import { ApiError } from '../http/api-error.js';
import type { KeyService } from '../services/keys.js';
import { KeyText, countedJsonParser, keyTextParser } from './import-body.js';
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
} from '../schemas/keys.js';

export interface KeyRouteOptions {
  keys: KeyService;
  importBodyLimit: number;
  validateOnImport: boolean;
}

const tags = ['tavily-keys'];

/**
 * Text bodies arrive parsed, as the keys keyTextParser found in them: the schema (which only
 * documents them) sets no type to check.
 */
const TextBody = Type.Unsafe<KeyText>({ description: 'any text (a .txt or .csv file, a pasted list): every tvly-… token in it is taken' });

/** POST /tavily-keys, with the body parsers that count keys as they arrive. */
const importRoute: FastifyPluginAsyncTypebox<KeyRouteOptions> = async (app, { keys, importBodyLimit, validateOnImport }) => {
  // The key cap is enforced while the body arrives, whatever its format. Files exported from
  // spreadsheets arrive as text/csv: keys are found in them as in text/plain.
  app.removeContentTypeParser(['application/json', 'text/plain']);
  app.addContentTypeParser('application/json', countedJsonParser(MAX_IMPORT_KEYS));
  app.addContentTypeParser(['text/plain', 'text/csv'], keyTextParser(MAX_IMPORT_KEYS));

  app.post(
    '/tavily-keys',
    {
      bodyLimit: importBodyLimit,
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
      const { addedIds, ...answer } = await keys.add(actorOf(req), { inputs, accounts, account, labels, label, validate: req.query.validate });
      // The new keys are checked against /usage once the answer is out.
      if (addedIds.length > 0 && !req.query.validate && validateOnImport) reply.raw.once('finish', () => keys.checkAdded(addedIds, req.log));
      return reply.code(201).send(answer);
    },
  );

};

export const keyRoutes: FastifyPluginAsyncTypebox<KeyRouteOptions> = async (app, opts) => {
  const { keys } = opts;
  await app.register(importRoute, opts);

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
    async (req) => keys.list(req.query),
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
      const lines = await keys.export(actorOf(req), req.query.status, req.log);
      const stream = Readable.from(lines);
      // A failure mid-way (a key that cannot be opened, the database gone) ends the download
      // unfinished, which the client sees, rather than as a shorter list.
      stream.on('error', (err) => req.log.error({ err }, 'key export failed mid-way; the download was cut'));
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
    async (req) => keys.refresh(actorOf(req), { ids: req.body.ids, staleAfterS: req.body.stale_after_s }),
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
    async () => keys.refreshStatus(),
  );

  app.post(
    '/tavily-keys/bulk',
    {
      bodyLimit: opts.importBodyLimit,
      schema: {
        tags,
        summary: 'Enable, disable or delete many keys',
        body: BulkBody,
        response: withErrors({ 200: BulkResponse }),
      },
    },
    async (req) => {
      const r = await keys.bulk(actorOf(req), req.body);
      req.log.info({ action: r.action, affected: r.affected }, 'bulk key change');
      return r;
    },
  );

  app.get(
    '/tavily-keys/:id',
    {
      schema: { tags, summary: 'One key', params: KeyIdParams, response: withErrors({ 200: KeyDetail }) },
    },
    async (req) => keys.get(req.params.id),
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
    async (req) => keys.update(actorOf(req), req.params.id, req.body),
  );

  app.delete(
    '/tavily-keys/:id',
    {
      schema: { tags, summary: 'Delete a key', params: KeyIdParams, response: withErrors({ 204: Type.Null() }) },
    },
    async (req, reply) => {
      await keys.delete(actorOf(req), req.params.id);
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/summary',
    { schema: { tags: ['summary'], summary: 'Keys by status, credits left, last refresh', response: withErrors({ 200: SummaryResponse }) } },
    async () => keys.summary(),
  );
};

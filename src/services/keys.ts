import type { Logger } from 'pino';

/** Where a service writes what it did (a request's logger, or the process's). */
type Log = Pick<Logger, 'info' | 'error'>;
import type { Actor, AuditLog } from '../audit/audit.js';
import type { ChangeFeed } from '../cluster/changes.js';
import { KeyDecryptError } from '../crypto.js';
import type { Db } from '../db/database.js';
import type { KeyCursor, KeyRepository, RenewingRow } from '../db/repositories/keys.js';
import type { LogRepository } from '../db/repositories/logs.js';
import type { KeyStatus } from '../db/schema.js';
import { cycleStart, nextReset } from '../cycles.js';
import { burnWindowStart, perDay, runsDry, runsDryWithResets } from '../forecast.js';
import { ApiError } from '../http/api-error.js';
import type { PlainKeyCache } from '../pool/key-cache.js';
import { type QuotaRefresher, type RefreshRequest, RefreshWriteError } from '../quota/refresh.js';
import type { BulkBody, ImportResponse, KeyDetail, KeyObject, ListQuery, PatchBody, RefreshStatusResponse, SummaryResponse } from '../schemas/keys.js';
import { forEachSliced, yieldToLoop } from '../slices.js';
import { count } from '../text.js';
import type { Static } from '@sinclair/typebox';
import type { AccountChange, AccountService } from './accounts.js';
import { type ImportDeps, type ImportRequest, importKeys } from './import.js';
import { keyView } from './views.js';

/** Keys per page of the export. */
const EXPORT_PAGE = 2000;

function notFound(id: number): ApiError {
  return new ApiError(404, 'key_not_found', `no Tavily key with id ${id}`);
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

export type ImportAnswer = Static<typeof ImportResponse> & {
  /** Ids of every key added (the answer lists only the first 1,000). */
  addedIds: number[];
};

/**
 * The pool's keys: list, add, change, delete, export, refresh, and the summary. A change runs in
 * one transaction with its audit row; once it commits, the pool takes it (here, and on the
 * other instances through the change feed).
 */
export class KeyService {
  constructor(
    private readonly d: ImportDeps & {
      db: Db;
      logs: LogRepository;
      audit: AuditLog;
      changes: ChangeFeed;
      accounts: ImportDeps['accounts'];
      accountService: AccountService;
      refresher: QuotaRefresher;
      plainKeys: PlainKeyCache;
    },
  ) {}

  async list(q: Static<typeof ListQuery>): Promise<{ items: KeyObject[]; next_cursor: string | null; total: number }> {
    const page = await this.d.keys.list({
      status: q.status,
      accountId: q.account_id,
      drift: q.drift,
      search: q.q?.trim() || undefined,
      sort: q.sort,
      order: q.order,
      limit: q.limit,
      cursor: q.cursor ? decodeCursor(q.sort, q.cursor) : undefined,
    });
    return { items: page.rows.map(keyView), next_cursor: page.next ? encodeCursor(q.sort, page.next) : null, total: page.total };
  }

  async get(id: number): Promise<Static<typeof KeyDetail>> {
    const row = await this.d.keys.getById(id);
    if (!row) throw notFound(id);
    return { ...keyView(row), endpoint_usage: row.endpoint_usage ? JSON.parse(row.endpoint_usage) : null };
  }

  /** Adds keys (de-duplicated, optionally checked against /usage first) in one transaction with its audit row. */
  async add(actor: Actor, req: Omit<ImportRequest, 'audit'>): Promise<ImportAnswer> {
    const result = await importKeys(this.d, {
      ...req,
      audit: (trx, added) =>
        this.d.audit.record(actor, trx, 'keys.add', { added: added.length, ids: added.slice(0, 1000), label: req.label, account: req.account ?? null, validate: req.validate }),
    });
    if (result.added > 0) await this.d.changes.keys(result.addedIds);
    const { accountIds: _, items, ...answer } = result;
    return { ...answer, items: items.map(keyView) };
  }

  /**
   * Checks newly added keys against /usage (the refresh's concurrency bound and single-flight
   * rules apply), so that the pool learns which are dead before traffic finds them. Not awaited
   * by the import's answer.
   */
  checkAdded(ids: readonly number[], log: Log): void {
    this.d.refresher.refresh({ ids: [...ids] }).then(
      (r) => log.info({ keys: r.total, failed: r.failed_count }, 'new keys checked against /usage'),
      (err: unknown) => log.error({ err }, 'checking new keys against /usage failed; the scheduled refresh will'),
    );
  }

  /** Changes a key's label or account, enables or disables it, or dismisses its drift finding. */
  async update(actor: Actor, id: number, body: Static<typeof PatchBody>): Promise<KeyObject> {
    const { account_id: accountId, drift, ...patch } = body;
    await this.d.accountService.change(async (trx): Promise<AccountChange & { result: null }> => {
      if (Object.keys(patch).length > 0 || drift === null) {
        if (!(await this.d.keys.update(id, { ...patch, clearDrift: drift === null }, trx))) throw notFound(id);
      }
      await this.d.audit.record(actor, trx, 'keys.update', { id, fields: Object.keys(body) });
      if (accountId !== undefined) {
        const change = await this.d.accountService.assign([id], accountId, trx);
        if (change.keyIds.length === 0) throw notFound(id);
        return { result: null, ...change };
      }
      return { result: null, keyIds: [id] };
    });
    return keyView((await this.d.keys.getById(id))!);
  }

  async delete(actor: Actor, id: number): Promise<void> {
    const gone = await this.d.db.transaction().execute(async (trx) => {
      const [deleted] = await this.d.keys.deleteMany([id], trx);
      if (deleted === undefined) throw notFound(id);
      await this.d.audit.record(actor, trx, 'keys.delete', { id });
      return deleted;
    });
    await this.d.changes.keys([gone]);
  }

  /** Enables, disables, deletes or assigns many keys in one transaction; says which ids were not found. */
  async bulk(actor: Actor, body: Static<typeof BulkBody>): Promise<{ action: typeof body.action; affected: number; not_found: number[] }> {
    const { action, ids } = body;
    const unique = [...new Set(ids)];
    if (action === 'assign' && body.account_id === undefined && body.account === undefined) {
      throw new ApiError(400, 'invalid_request', 'assign needs account_id (an account, or null for none) or account (a name)');
    }
    if (action !== 'assign' && (body.account_id !== undefined || body.account !== undefined)) {
      throw new ApiError(400, 'invalid_request', `account_id and account go with action "assign", not "${action}"`);
    }
    const done = await this.d.accountService.change(async (trx): Promise<AccountChange & { result: number[] }> => {
      let change: AccountChange;
      if (action === 'delete') {
        // Their accounts' rooms stay as they are: what an account can spend does not grow when a key goes.
        change = { keyIds: await this.d.keys.deleteMany(unique, trx) };
      } else if (action !== 'assign') {
        change = { keyIds: await this.d.keys.setEnabled(unique, action === 'enable', trx) };
      } else {
        const name = body.account?.trim();
        const accountId = name !== undefined ? await this.d.accountService.ensureName(name, trx) : body.account_id!;
        change = await this.d.accountService.assign(unique, accountId, trx);
      }
      await this.d.audit.record(actor, trx, 'keys.bulk', {
        action,
        affected: change.keyIds.length,
        ids: change.keyIds.slice(0, 1000),
        ...(action === 'assign' ? { account_id: body.account_id ?? null, account: body.account ?? null } : {}),
      });
      return { result: change.keyIds, ...change };
    });
    const hit = new Set(done);
    return { action, affected: done.length, not_found: unique.filter((id) => !hit.has(id)) };
  }

  /**
   * The keys in full, one a line, page by page and decrypted in slices: 300,000 keys stream out
   * without holding the event loop, and without the whole export in memory. The audit row and
   * the first page are done before anything is sent: a wrong ENCRYPTION_KEY is a clean 500, not
   * a truncated download.
   */
  async export(actor: Actor, status: KeyStatus | undefined, log: Log): Promise<AsyncIterable<string>> {
    await this.d.audit.record(actor, this.d.db, 'keys.export', { status: status ?? 'all' });
    const first = await this.d.keys.sealedKeysPage(status, 0, EXPORT_PAGE);
    const firstLines = first.map((r) => this.#open(r.id, r.key_ciphertext));
    const bad = firstLines.filter((l) => l === null).length;
    if (bad > 0) throw new ApiError(500, 'decrypt_failed', `${count(bad, 'key')} cannot be decrypted: was ENCRYPTION_KEY changed?`);
    const keys = this.d.keys;
    const open = (id: number, sealed: string) => this.#open(id, sealed);
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
        page = await keys.sealedKeysPage(status, page.at(-1)!.id, EXPORT_PAGE);
        const next: string[] = [];
        await forEachSliced(page, (r) => {
          const plain = open(r.id, r.key_ciphertext);
          if (plain === null) throw new ApiError(500, 'decrypt_failed', `key ${r.id} cannot be decrypted`);
          next.push(plain);
        });
        text = next;
      }
      log.info({ keys: exported }, 'keys exported');
    }
    return lines();
  }

  /** Reads the keys' figures from Tavily's /usage (one query, the calls concurrent, one transaction). */
  async refresh(actor: Actor, opts: Pick<RefreshRequest, 'ids' | 'staleAfterS'>) {
    await this.d.audit.record(actor, this.d.db, 'keys.refresh', { ids: opts.ids?.slice(0, 1000) ?? 'all', stale_after_s: opts.staleAfterS ?? null });
    try {
      return await this.d.refresher.refresh(opts);
    } catch (err) {
      if (err instanceof RefreshWriteError) throw new ApiError(500, 'refresh_write_failed', err.message);
      throw err;
    }
  }

  refreshStatus(): Static<typeof RefreshStatusResponse> {
    return { progress: this.d.refresher.progress, last: this.d.refresher.lastResult };
  }

  async summary(): Promise<Static<typeof SummaryResponse>> {
    const now = Date.now();
    const [s, window] = await Promise.all([this.d.keys.summary(), this.d.logs.windowTotals(burnWindowStart(now))]);
    return {
      keys: { total: s.total, by_status: s.by_status },
      total_remaining: s.total_remaining,
      total_limit: s.total_limit,
      unknown_quota: s.unknown_quota,
      spent_7d: window.credits,
      forecast: forecastOf(s.renewing, s.total_remaining, window.credits, now),
      cache: { hits_7d: window.hits, joined_7d: window.joined, saved_7d: window.saved },
      accounts: s.accounts,
      last_refreshed_at: s.last_refreshed_at,
      refresh: { running: this.d.refresher.running, last: this.d.refresher.lastResult },
    };
  }

  /** The key's text (from the pool's cache of decrypted keys when it is there), or null when it cannot be decrypted. */
  #open(id: number, sealed: string): string | null {
    try {
      return this.d.plainKeys.get(id, sealed);
    } catch (err) {
      if (err instanceof KeyDecryptError) return null;
      throw err;
    }
  }
}

const WEEK_MS = 7 * 86_400_000;

/** The summary's forecast: the burn rate, the runs-dry date with and without the resets to come, and what lapses within a week. */
function forecastOf(renewing: readonly RenewingRow[], totalRemaining: number, spent7d: number, now: number): Static<typeof SummaryResponse>['forecast'] {
  const units = renewing.map((r) => {
    const cycleStartedAt = cycleStart(r.cycleStartedAt);
    return { r, cycleStartedAt, renewal: nextReset(cycleStartedAt, now) };
  });
  const lapsing = units.filter((u) => u.renewal.at - now <= WEEK_MS && u.r.remaining > 0).sort((a, b) => a.renewal.at - b.renewal.at);
  const dry = runsDryWithResets(units.map((u) => ({ remaining: u.r.remaining, limit: u.r.limit, cycleStartedAt: u.cycleStartedAt })), perDay(spent7d), now);
  const plain = runsDry(totalRemaining, spent7d, now);
  return {
    per_day: perDay(spent7d),
    runs_dry_at: dry?.toISOString() ?? null,
    runs_dry_without_resets_at: plain?.toISOString() ?? null,
    lapsing_7d_total: lapsing.reduce((n, u) => n + u.r.remaining, 0),
    lapsing_7d: lapsing.slice(0, 50).map((u) => ({ account_id: u.r.accountId, name: u.r.name, keys: u.r.keys, credits: u.r.remaining, lapses_at: new Date(u.renewal.at).toISOString(), basis: u.renewal.basis })),
  };
}

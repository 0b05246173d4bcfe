import pLimit, { type LimitFunction } from 'p-limit';
import type { Logger } from 'pino';
import { type KeyCipher, KeyDecryptError } from '../crypto.js';
import type { Db } from '../db/database.js';
import type { KeyRepository, RefreshWrite } from '../db/repositories/keys.js';
import type { KeyHealth } from '../db/schema.js';
import { PlainKeyCache } from '../pool/key-cache.js';
import { forEachSliced } from '../slices.js';
import { UpstreamError } from '../tavily/errors.js';
import type { UsageReport } from '../tavily/usage.js';
import { figuresFromUsage } from '../tavily/usage.js';

export interface UsageSource {
  usage(key: string, timeoutMs: number): Promise<UsageReport>;
}

export interface RefreshRequest {
  /** Only these keys; all keys when absent. */
  ids?: readonly number[];
  /** Only keys not refreshed successfully in the last n seconds. */
  staleAfterS?: number;
}

export interface RefreshFailure {
  id: number;
  key_masked: string;
  error: string;
  status_code: number | null;
}

export interface RefreshResult {
  total: number;
  success_count: number;
  failed_count: number;
  duration_ms: number;
  /** Time to load the keys (the one read). */
  load_ms: number;
  /** Time for all /usage calls. */
  fetch_ms: number;
  /** Time spent in the one write transaction. */
  write_ms: number;
  started_at: string;
  finished_at: string;
  failures: RefreshFailure[];
}

export interface RefreshProgress {
  running: boolean;
  total: number;
  done: number;
  failed: number;
  started_at: string | null;
}

/** The single write transaction failed and was rolled back: nothing of the run was stored. */
export class RefreshWriteError extends Error {
  override name = 'RefreshWriteError';
}

/** The outcome of one /usage check, before anything is stored. */
export type CheckOutcome =
  | { ok: true; report: UsageReport }
  | { ok: false; error: string; statusCode: number | null; health: KeyHealth | null };

export interface RefresherDeps {
  db: Db;
  keys: KeyRepository;
  cipher: KeyCipher;
  upstream: UsageSource;
  concurrency: number;
  timeoutMs: number;
  log: Logger;
  /** Decrypted keys, shared with the gateway's pool. */
  plainKeys?: PlainKeyCache;
  /** Runs before the keys are loaded (the gateway flushes its pending deductions). */
  beforeLoad?: () => Promise<void>;
  /** Gets the outcomes once they are committed (the gateway updates its in-memory pool). */
  afterWrite?: (writes: readonly RefreshWrite[]) => void | Promise<void>;
}

/** Does a running refresh already do everything `req` asks for? */
function covers(running: RefreshRequest, req: RefreshRequest): boolean {
  let idsCovered = running.ids === undefined;
  if (!idsCovered && req.ids !== undefined) {
    const have = new Set(running.ids);
    idsCovered = req.ids.every((id) => have.has(id));
  }
  const staleCovered =
    running.staleAfterS === undefined || (req.staleAfterS !== undefined && req.staleAfterS >= running.staleAfterS);
  return idsCovered && staleCovered;
}

/**
 * Refreshes key quotas from Tavily's GET /usage: one query loads the keys, every call runs
 * concurrently under one bound, outcomes are applied in memory and written in one transaction.
 * Runs are single-flight: a request that a running refresh covers gets that run's result.
 */
export class QuotaRefresher {
  readonly #deps: RefresherDeps;
  /** Shared by refreshes and import validation: one bound on /usage calls in flight. */
  readonly #limit: LimitFunction;
  #current: { req: RefreshRequest; promise: Promise<RefreshResult> } | null = null;
  #progress: RefreshProgress = { running: false, total: 0, done: 0, failed: 0, started_at: null };
  #last: RefreshResult | null = null;
  readonly #plain: PlainKeyCache;

  constructor(deps: RefresherDeps) {
    this.#deps = deps;
    this.#limit = pLimit(deps.concurrency);
    this.#plain = deps.plainKeys ?? new PlainKeyCache(deps.cipher);
  }

  get progress(): RefreshProgress {
    return { ...this.#progress };
  }

  get lastResult(): RefreshResult | null {
    return this.#last;
  }

  get running(): boolean {
    return this.#current !== null;
  }

  async refresh(req: RefreshRequest = {}): Promise<RefreshResult> {
    while (this.#current) {
      if (covers(this.#current.req, req)) return this.#current.promise;
      // Another kind of run is under way: wait for it, then run ours (never two at once).
      await this.#current.promise.catch(() => undefined);
    }
    const progress: RefreshProgress = { running: true, total: 0, done: 0, failed: 0, started_at: new Date().toISOString() };
    this.#progress = progress;
    const promise = this.#run(req, progress).finally(() => {
      progress.running = false;
      this.#current = null;
    });
    this.#current = { req, promise };
    return promise;
  }

  /** Checks plain keys against /usage under the shared bound (used by import validation). */
  async check(plainKeys: readonly string[]): Promise<CheckOutcome[]> {
    return Promise.all(plainKeys.map((key) => this.#limit(() => this.#checkOne(key))));
  }

  async #checkOne(key: string): Promise<CheckOutcome> {
    try {
      return { ok: true, report: await this.#deps.upstream.usage(key, this.#deps.timeoutMs) };
    } catch (err) {
      if (!(err instanceof UpstreamError)) {
        this.#deps.log.error({ err }, 'unexpected error while checking a key');
        return { ok: false, error: 'internal error while checking the key', statusCode: null, health: null };
      }
      return { ok: false, error: describe(err), statusCode: err.statusCode, health: healthAfter(err) };
    }
  }

  async #run(req: RefreshRequest, progress: RefreshProgress): Promise<RefreshResult> {
    const { db, keys, log } = this.#deps;
    const t0 = performance.now();
    const startedAt = progress.started_at!;
    const refreshedBefore =
      req.staleAfterS !== undefined ? new Date(Date.now() - req.staleAfterS * 1000).toISOString() : undefined;

    await this.#deps.beforeLoad?.();
    const candidates = await keys.loadForRefresh({ ids: req.ids, refreshedBefore });
    progress.total = candidates.length;
    const loadMs = performance.now() - t0;
    // A refresh of every key knows the whole pool: drop cached keys that were deleted.
    if (!req.ids && req.staleAfterS === undefined) this.#plain.retain(candidates.map((c) => c.id));

    const writes: RefreshWrite[] = [];
    const failures: RefreshFailure[] = [];
    const fail = (id: number, keyMasked: string, error: string, statusCode: number | null, health: KeyHealth | null) => {
      writes.push({ id, ok: false, error, status: health });
      failures.push({ id, key_masked: keyMasked, error, status_code: statusCode });
      progress.failed++;
    };

    // 100,000 keys are queued in slices: queueing them all at once would hold the event loop.
    const calls: Promise<void>[] = [];
    await forEachSliced(candidates, (c) =>
      void calls.push(
        this.#limit(async () => {
          let plain: string;
          try {
            plain = this.#plain.get(c.id, c.key_ciphertext);
          } catch (err) {
            fail(c.id, c.key_masked, err instanceof KeyDecryptError ? err.message : 'cannot decrypt the key', null, null);
            progress.done++;
            return;
          }
          const outcome = await this.#checkOne(plain);
          if (outcome.ok) writes.push({ id: c.id, ok: true, ...figuresFromUsage(outcome.report) });
          else fail(c.id, c.key_masked, outcome.error, outcome.statusCode, outcome.health);
          progress.done++;
        }),
      ),
    );
    await Promise.all(calls);

    const finishedAt = new Date().toISOString();
    const w0 = performance.now();
    const fetchMs = w0 - t0 - loadMs;
    try {
      await db.transaction().execute((trx) => keys.applyRefresh(writes, finishedAt, trx));
    } catch (err) {
      log.error({ err, keys: candidates.length }, 'quota refresh: the write transaction failed and was rolled back');
      throw new RefreshWriteError(
        `could not store the refresh results (nothing was written): ${err instanceof Error ? err.message : String(err)}`,
      );
    }
    const writeMs = performance.now() - w0;
    await this.#deps.afterWrite?.(writes);

    failures.sort((a, b) => a.id - b.id);
    const result: RefreshResult = {
      total: candidates.length,
      success_count: candidates.length - failures.length,
      failed_count: failures.length,
      duration_ms: Math.round(performance.now() - t0),
      load_ms: round1(loadMs),
      fetch_ms: round1(fetchMs),
      write_ms: round1(writeMs),
      started_at: startedAt,
      finished_at: finishedAt,
      failures,
    };
    this.#last = result;
    log.info(
      { total: result.total, ok: result.success_count, failed: result.failed_count, ms: result.duration_ms, write_ms: result.write_ms },
      'quota refresh finished',
    );
    return result;
  }
}

const round1 = (ms: number) => Math.round(ms * 10) / 10;

/** What a failed /usage call says about the key's health; null leaves it as it was. */
function healthAfter(err: UpstreamError): KeyHealth | null {
  switch (err.kind) {
    case 'unauthorized':
      return 'invalid';
    case 'limit_exceeded':
    case 'paygo_exceeded':
      return 'exhausted';
    default:
      return null;
  }
}

function describe(err: UpstreamError): string {
  switch (err.kind) {
    case 'unauthorized':
      return `invalid key (${err.message})`;
    case 'rate_limited':
      return `rate limited by Tavily (${err.message})${err.retryAfterS !== null ? `; retry after ${err.retryAfterS} s` : ''}`;
    case 'limit_exceeded':
    case 'paygo_exceeded':
      return `credits exhausted (${err.message})`;
    case 'server':
      return `Tavily server error (${err.message})`;
    default:
      return err.message;
  }
}

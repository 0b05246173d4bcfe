import pLimit, { type LimitFunction } from 'p-limit';
import type { Logger } from 'pino';
import { type KeyCipher, KeyDecryptError } from '../crypto.js';
import type { Db } from '../db/database.js';
import { type Drift, accountRoom, accountUsage, laterReading } from '../db/figures.js';
import type { AccountRefreshWrite, AccountRepository } from '../db/repositories/accounts.js';
import type { KeyRepository, RefreshCandidate, RefreshWrite } from '../db/repositories/keys.js';
import type { LogRepository, SpendWindow } from '../db/repositories/logs.js';
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
  /** `only`: only keys out of credits (the low-rate check for a new billing cycle); `skip`: all but those. */
  exhausted?: 'only' | 'skip';
}

/** A key where Tavily counted more than the pool spent through it, beyond the tolerance. */
export interface DriftFinding {
  /** The key, or (with `account_id` set and `id` null) a whole account. */
  id: number | null;
  key_masked: string | null;
  account_id: number | null;
  /** Credits Tavily counted between the two checks. */
  tavily: number;
  /** Credits the pool spent through the key (or the account's keys) between them. */
  pool: number;
  since: string;
  at: string;
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
  /** Keys (and accounts) whose usage at Tavily grew by more than the pool spent through them. */
  drift: DriftFinding[];
  /** Keys whose usage fell since their last check: a new billing cycle. */
  new_cycles: number;
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
  accounts: AccountRepository;
  logs: LogRepository;
  /** Credits Tavily may count beyond what the pool logged before it is reported (credits in flight during a check). */
  driftTolerance: number;
  /** Log rows older than this are pruned: a longer window cannot be compared. */
  logRetentionMs: number;
  cipher: KeyCipher;
  upstream: UsageSource;
  concurrency: number;
  timeoutMs: number;
  log: Logger;
  /** Decrypted keys, shared with the gateway's pool. */
  plainKeys?: PlainKeyCache;
  /** Runs before the keys are loaded, and before what the pool spent is read (the gateway flushes its pending log). */
  beforeLoad?: () => Promise<void>;
  /** After each run: its duration, the keys whose check failed, and whether its write held. */
  onRun?: (seconds: number, keyFailures: number, ok: boolean) => void;
  /** Runs in the write transaction, before the writes (the alerts record what changed). */
  inTransaction?: (trx: Db, run: { total: number; failures: readonly RefreshFailure[]; writes: readonly RefreshWrite[]; accountWrites: readonly AccountRefreshWrite[]; drift: readonly DriftFinding[] }) => Promise<void>;
  /** Gets the outcomes once they are committed (the gateway updates its in-memory pool). */
  afterWrite?: (writes: readonly RefreshWrite[], accounts: readonly AccountRefreshWrite[]) => void | Promise<void>;
}

/** A refresh of every key, whatever its state or age. */
const isPlain = (req: RefreshRequest) => req.ids === undefined && req.staleAfterS === undefined && req.exhausted === undefined;

/** Does a running refresh already do everything `req` asks for? */
function covers(running: RefreshRequest, req: RefreshRequest): boolean {
  let idsCovered = running.ids === undefined;
  if (!idsCovered && req.ids !== undefined) {
    const have = new Set(running.ids);
    idsCovered = req.ids.every((id) => have.has(id));
  }
  const staleCovered =
    running.staleAfterS === undefined || (req.staleAfterS !== undefined && req.staleAfterS >= running.staleAfterS);
  const exhaustedCovered = running.exhausted === undefined || running.exhausted === req.exhausted;
  return idsCovered && staleCovered && exhaustedCovered;
}

/** A run under way: what it was asked, the keys it holds (null: it has not loaded them yet), its progress. */
interface Run {
  req: RefreshRequest;
  promise: Promise<RefreshResult>;
  held: Set<number> | null;
  progress: RefreshProgress;
}

/** Two runs' results as one: the keys of both, the failures of both. */
function merged(own: RefreshResult, other: RefreshResult, t0: number): RefreshResult {
  return {
    ...own,
    total: own.total + other.total,
    success_count: own.success_count + other.success_count,
    failed_count: own.failed_count + other.failed_count,
    duration_ms: Math.round(performance.now() - t0),
    finished_at: own.finished_at > other.finished_at ? own.finished_at : other.finished_at,
    failures: [...own.failures, ...other.failures].sort((a, b) => a.id - b.id),
    drift: [...own.drift, ...other.drift],
    new_cycles: own.new_cycles + other.new_cycles,
  };
}

/**
 * Refreshes key quotas from Tavily's GET /usage: one query loads the keys, every call runs
 * concurrently under one bound, outcomes are applied in memory and written in one transaction.
 * Runs are single-flight: a request that a running refresh covers gets that run's result. A
 * refresh of every key that finds runs of some keys under way (the check of keys just
 * imported) does not wait behind them: it checks the other keys at once, then answers with
 * theirs and its own, so that no key is checked twice and the answer comes within one timeout.
 */
export class QuotaRefresher {
  readonly #deps: RefresherDeps;
  /** Shared by refreshes and import validation: one bound on /usage calls in flight. */
  readonly #limit: LimitFunction;
  readonly #runs = new Set<Run>();
  #progress: RefreshProgress = { running: false, total: 0, done: 0, failed: 0, started_at: null };
  #last: RefreshResult | null = null;
  readonly #plain: PlainKeyCache;

  constructor(deps: RefresherDeps) {
    this.#deps = deps;
    this.#limit = pLimit(deps.concurrency);
    this.#plain = deps.plainKeys ?? new PlainKeyCache(deps.cipher);
  }

  /** The refresh under way: every run's keys together (or the last run's figures when none runs). */
  get progress(): RefreshProgress {
    if (this.#runs.size <= 1) return { ...this.#progress };
    const p: RefreshProgress = { running: true, total: 0, done: 0, failed: 0, started_at: null };
    for (const r of this.#runs) {
      p.total += r.progress.total;
      p.done += r.progress.done;
      p.failed += r.progress.failed;
      if (r.progress.started_at && (p.started_at === null || r.progress.started_at < p.started_at)) p.started_at = r.progress.started_at;
    }
    return p;
  }

  get lastResult(): RefreshResult | null {
    return this.#last;
  }

  get running(): boolean {
    return this.#runs.size > 0;
  }

  async refresh(req: RefreshRequest = {}): Promise<RefreshResult> {
    const t0 = performance.now();
    for (;;) {
      for (const r of this.#runs) if (covers(r.req, req)) return r.promise;
      // Runs of listed keys under way, and this one a plain refresh of every key: it takes the
      // other keys now and adds their results to its own (never a key checked twice at once).
      const partial = [...this.#runs];
      if (partial.length > 0 && isPlain(req) && partial.every((r) => r.req.ids !== undefined && r.held !== null)) {
        const held = new Set(partial.flatMap((r) => [...r.held!]));
        const own = this.#start(req, held);
        const [mine, ...theirs] = await Promise.all([own, ...partial.map((r) => r.promise.catch(() => null))]);
        let result = mine!;
        for (const other of theirs) if (other) result = merged(result, other, t0);
        this.#last = result;
        return result;
      }
      if (partial.length === 0) return this.#start(req, null);
      // Another kind of run is under way: wait for it, then look again.
      await Promise.all(partial.map((r) => r.promise.catch(() => undefined)));
    }
  }

  /** Starts a run now; `skip`: keys other runs under way hold. */
  #start(req: RefreshRequest, skip: ReadonlySet<number> | null): Promise<RefreshResult> {
    const progress: RefreshProgress = { running: true, total: 0, done: 0, failed: 0, started_at: new Date().toISOString() };
    this.#progress = progress;
    const run: Run = { req, promise: null!, held: req.ids ? new Set(req.ids) : null, progress };
    run.promise = this.#run(req, progress, skip, (ids) => {
      run.held ??= new Set(ids);
    }).finally(() => {
      progress.running = false;
      this.#runs.delete(run);
    });
    this.#runs.add(run);
    return run.promise;
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

  async #run(req: RefreshRequest, progress: RefreshProgress, skip: ReadonlySet<number> | null, holding: (ids: number[]) => void): Promise<RefreshResult> {
    const { db, keys, log } = this.#deps;
    const t0 = performance.now();
    const startedAt = progress.started_at!;
    const refreshedBefore =
      req.staleAfterS !== undefined ? new Date(Date.now() - req.staleAfterS * 1000).toISOString() : undefined;

    await this.#deps.beforeLoad?.();
    const loaded = await keys.loadForRefresh({ ids: req.ids, refreshedBefore, exhausted: req.exhausted });
    const candidates = skip ? loaded.filter((c) => !skip.has(c.id)) : loaded;
    holding(candidates.map((c) => c.id));
    progress.total = candidates.length;
    const loadMs = performance.now() - t0;
    // A refresh of every key knows the whole pool: drop cached keys that were deleted.
    if (isPlain(req)) this.#plain.retain(loaded.map((c) => c.id));

    const checked: Checked[] = [];
    const failures: RefreshFailure[] = [];
    const failedWrites: RefreshWrite[] = [];
    const fail = (id: number, keyMasked: string, error: string, statusCode: number | null, health: KeyHealth | null) => {
      failedWrites.push({ id, ok: false, error, status: health });
      failures.push({ id, key_masked: keyMasked, error, status_code: statusCode });
      progress.failed++;
    };
    await this.#checkAll(candidates, checked, fail, progress);
    // An account with room again brings back its other exhausted keys: they are checked in this
    // run too, rather than at the next low-rate check.
    const withRoom = new Set<number>();
    for (const c of checked) {
      if (c.c.account_id === null) continue;
      const room = accountRoom(c.report.account);
      if (room === null || room > 0) withRoom.add(c.c.account_id);
    }
    if (withRoom.size > 0) {
      const more = await keys.exhaustedOfAccounts([...withRoom], new Set([...candidates.map((c) => c.id), ...(skip ?? [])]));
      if (more.length > 0) {
        progress.total += more.length;
        await this.#checkAll(more, checked, fail, progress);
      }
    }

    const fetchMs = performance.now() - t0 - loadMs;
    const { writes, accountWrites, drift, newCycles } = await this.#outcomes(checked);
    writes.push(...failedWrites);

    const finishedAt = new Date().toISOString();
    const w0 = performance.now();
    try {
      await db.transaction().execute(async (trx) => {
        await this.#deps.inTransaction?.(trx, { total: progress.total, failures, writes, accountWrites, drift });
        await keys.applyRefresh(writes, finishedAt, trx);
        await this.#deps.accounts.applyRefresh(accountWrites, finishedAt, trx);
      });
    } catch (err) {
      this.#deps.onRun?.((performance.now() - t0) / 1000, failures.length, false);
      log.error({ err, keys: candidates.length }, 'quota refresh: the write transaction failed and was rolled back');
      throw new RefreshWriteError(
        `could not store the refresh results (nothing was written): ${err instanceof Error ? err.message : String(err)}`,
      );
    }
    const writeMs = performance.now() - w0;
    await this.#deps.afterWrite?.(writes, accountWrites);

    failures.sort((a, b) => a.id - b.id);
    const total = progress.total;
    const result: RefreshResult = {
      total,
      success_count: total - failures.length,
      failed_count: failures.length,
      duration_ms: Math.round(performance.now() - t0),
      load_ms: round1(loadMs),
      fetch_ms: round1(fetchMs),
      write_ms: round1(writeMs),
      started_at: startedAt,
      finished_at: finishedAt,
      failures,
      drift,
      new_cycles: newCycles,
    };
    this.#last = result;
    this.#deps.onRun?.(result.duration_ms / 1000, result.failed_count, true);
    log.info(
      { total: result.total, ok: result.success_count, failed: result.failed_count, ms: result.duration_ms, write_ms: result.write_ms, new_cycles: newCycles, drift: drift.length },
      'quota refresh finished',
    );
    if (drift.length > 0) {
      log.warn(
        { findings: drift.length, first: drift.slice(0, 5).map((d) => ({ key_id: d.id, account_id: d.account_id, tavily: d.tavily, pool: d.pool })) },
        'Tavily counted usage the pool did not spend: a key (or its account) is used elsewhere',
      );
    }
    return result;
  }

  /** Checks the keys against /usage under the shared bound; the answer's time is kept with it. */
  async #checkAll(
    candidates: readonly RefreshCandidate[],
    checked: Checked[],
    fail: (id: number, keyMasked: string, error: string, statusCode: number | null, health: KeyHealth | null) => void,
    progress: RefreshProgress,
  ): Promise<void> {
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
          const readAt = new Date().toISOString();
          const outcome = await this.#checkOne(plain);
          if (outcome.ok) checked.push({ c, report: outcome.report, readAt });
          else fail(c.id, c.key_masked, outcome.error, outcome.statusCode, outcome.health);
          progress.done++;
        }),
      ),
    );
    await Promise.all(calls);
  }

  /**
   * What the answers mean beyond their figures: a fall in usage is a new billing cycle; a rise
   * beyond what the pool spent (read from the request log, after a flush) is usage nobody here
   * spent. Each account takes the figures of its key read last.
   */
  async #outcomes(checked: readonly Checked[]) {
    const { accounts, logs, driftTolerance, logRetentionMs } = this.#deps;
    const oldest = new Date(Date.now() - logRetentionMs).toISOString();
    const drift: DriftFinding[] = [];
    /** Comparisons with the log, for windows it still holds: what Tavily counted, and where a finding goes. */
    const keyChecks: Comparison[] = [];
    const accountChecks: Comparison[] = [];
    const comparable = (from: string | null, usage: number | null): from is string => from !== null && usage !== null && from >= oldest;

    const writes: RefreshWrite[] = [];
    let newCycles = 0;
    for (const { c, report, readAt } of checked) {
      const fell =
        (c.key_usage !== null && report.key.usage < c.key_usage) ||
        (c.plan_usage !== null && report.account.plan_usage !== null && report.account.plan_usage < c.plan_usage);
      const w = { id: c.id, ok: true as const, account_id: c.account_id, ...figuresFromUsage(report, readAt), cycle_started_at: fell ? readAt : null, drift: null as Drift | null };
      writes.push(w);
      if (fell) newCycles++;
      else if (comparable(c.usage_read_at, c.key_usage)) {
        keyChecks.push({
          window: { id: c.id, from: c.usage_read_at, to: readAt },
          tavily: report.key.usage - c.key_usage!,
          found: (d) => {
            w.drift = d;
            drift.push({ id: c.id, key_masked: c.key_masked, account_id: c.account_id, ...d });
          },
        });
      }
    }

    // Each account: the figures of its key read last.
    const latest = new Map<number, Checked>();
    for (const ch of checked) {
      const id = ch.c.account_id;
      if (id === null) continue;
      const cur = latest.get(id);
      if (laterReading({ at: ch.readAt, usage: ch.report.account.plan_usage }, cur && { at: cur.readAt, usage: cur.report.account.plan_usage })) latest.set(id, ch);
    }
    const stored = new Map((await accounts.loadForRefresh([...latest.keys()])).map((a) => [a.id, a]));
    const accountWrites: AccountRefreshWrite[] = [];
    for (const [id, { report, readAt }] of latest) {
      const a = report.account;
      const before = stored.get(id);
      if (!before) continue; // deleted meanwhile
      const was = accountUsage(before);
      const now = accountUsage(a);
      const fell = was !== null && now !== null && now < was;
      const aw: AccountRefreshWrite = {
        id,
        plan: a.current_plan,
        plan_usage: a.plan_usage,
        plan_limit: a.plan_limit,
        paygo_usage: a.paygo_usage,
        paygo_limit: a.paygo_limit,
        remaining: accountRoom(a),
        usage_read_at: readAt,
        cycle_started_at: fell ? readAt : null,
        drift: null,
      };
      accountWrites.push(aw);
      if (!fell && now !== null && comparable(before.usage_read_at, was)) {
        accountChecks.push({
          window: { id, from: before.usage_read_at, to: readAt },
          tavily: now - was!,
          found: (d) => {
            aw.drift = d;
            drift.push({ id: null, key_masked: null, account_id: id, ...d });
          },
        });
      }
    }

    if (keyChecks.length > 0 || accountChecks.length > 0) {
      // Requests this instance finished before the checks are in the log before it is read.
      await this.#deps.beforeLoad?.();
      const [byKey, byAccount] = await Promise.all([logs.spentByKeys(keyChecks.map((k) => k.window)), logs.spentByAccounts(accountChecks.map((a) => a.window))]);
      for (const [checks, spent] of [[keyChecks, byKey], [accountChecks, byAccount]] as const) {
        for (const { window, tavily, found } of checks) {
          const pool = spent.get(window.id) ?? 0;
          if (tavily - pool > driftTolerance) found({ tavily, pool, since: window.from, at: window.to });
        }
      }
    }
    return { writes, accountWrites, drift, newCycles };
  }
}

/** What Tavily counted in a window, to compare with what the log says the pool spent in it. */
interface Comparison {
  window: SpendWindow;
  tavily: number;
  found: (d: Drift) => void;
}

interface Checked {
  c: RefreshCandidate;
  report: UsageReport;
  /** When the /usage call was made: the end of this key's drift window and the start of the next. */
  readAt: string;
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

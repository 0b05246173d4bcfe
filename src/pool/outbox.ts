import type { Logger } from 'pino';
import type { Db, DialectKind } from '../db/database.js';
import { dbFault } from '../db/errors.js';
import { AccountRepository } from '../db/repositories/accounts.js';
import { KeyRepository } from '../db/repositories/keys.js';
import { type Failover, LogRepository, encodeFailovers } from '../db/repositories/logs.js';
import { ResearchRepository } from '../db/repositories/research.js';
import { TokenRepository } from '../db/repositories/tokens.js';
import type { Door, KeyHealth, NewLogRow } from '../db/schema.js';
import { storableOrNull, storableText } from '../text.js';

export type LogEntry = Omit<NewLogRow, 'id' | 'requests' | 'via' | 'failovers' | 'cache' | 'credits_saved'> & {
  /** The answer cache's part in it (null or absent: no cache). */
  cache?: NewLogRow['cache'];
  /** Credits a cached or joined answer saved. */
  credits_saved?: number;
  /** How many requests the row stands for: 1, or the count of an aggregated refusal. */
  requests?: number;
  /** The door the request came through (REST when not said). */
  via?: Door;
  /** The keys tried before the one that answered (encoded when the batch is written, not on the request's path). */
  failovers?: readonly Failover[] | null;
};


export interface ResearchTask {
  request_id: string;
  key_id: number;
  token_id: number | null;
  created_at: string;
  expires_at: string;
}

interface Batch {
  logs: LogEntry[];
  /** key id → credits spent and the last use. */
  keys: Map<number, { credits: number; lastUsed: string }>;
  /** `tokenId:month` → credits spent. */
  tokens: Map<string, { id: number; month: string; credits: number; lastUsed: string }>;
  health: Map<number, { status: KeyHealth; error: string }>;
  /** key id → epoch ms until which it rests (after a 429, or failures), and why. */
  cool: Map<number, { until: number; reason: string }>;
  /** account id → what it can still spend (set, not deducted: an account that ran out). */
  accounts: Map<number, number>;
  research: ResearchTask[];
  charged: Set<string>;
}

const emptyBatch = (): Batch => ({ logs: [], keys: new Map(), tokens: new Map(), health: new Map(), cool: new Map(), accounts: new Map(), research: [], charged: new Set() });
const isEmpty = (b: Batch) =>
  b.logs.length === 0 &&
  b.keys.size === 0 &&
  b.accounts.size === 0 &&
  b.tokens.size === 0 &&
  b.health.size === 0 &&
  b.cool.size === 0 &&
  b.research.length === 0 &&
  b.charged.size === 0;

/** What a flush changed that other instances keep in memory: sent to them on commit. */
export interface FlushedChanges {
  /** [key id, credits spent] */
  keys: Array<[number, number]>;
  /** [token id, month, credits spent] */
  tokens: Array<[number, string, number]>;
  health: Array<[number, KeyHealth]>;
  /** [key id, epoch ms the cooldown ends] */
  cool: Array<[number, number]>;
  /** [account id, what it can still spend] */
  accounts: Array<[number, number]>;
  /** Research tasks billed now (no other instance may bill them again). */
  charged: string[];
}

export interface OutboxOptions {
  db: Db;
  dialect: DialectKind;
  log: Logger;
  /** Flush at least this often. */
  intervalMs?: number;
  /** Flush as soon as this many log rows wait. */
  maxBatch?: number;
  /** How soon a change other instances must learn quickly (a key's health, a cooldown) is flushed. */
  urgentMs?: number;
  /** Refusals (429, 432 from the gateway itself) are counted and written as one row per token, endpoint and status this often. */
  refusalWindowMs?: number;
  /** While the database cannot be written, at most this many log rows wait; older ones are dropped (and counted). */
  maxPendingRows?: number;
  /**
   * Runs inside each flush's transaction, after its writes: tells the other instances what
   * changed (PostgreSQL delivers a NOTIFY on commit, and drops it on rollback).
   */
  publish?: (trx: Db, changes: FlushedChanges) => Promise<void>;
  /** After each flush: how long it took, and whether it was written. */
  onFlush?: (seconds: number, ok: boolean) => void;
  /** After a transaction that wrote state changes committed: what it changed (the budget ledger's spend is flushed). */
  committed?: (changes: FlushedChanges) => void;
  /** Runs inside the flush's transaction before key health is written (the alerts record what changed). */
  beforeHealth?: (trx: Db, changes: Array<{ id: number; status: KeyHealth; reason: string }>) => Promise<void>;
}

/** A refusal by the gateway itself (over budget, over RPM), before any key was used. */
export interface Refusal {
  tokenId: number;
  endpoint: string;
  status: number;
  error: string;
  via?: Door;
}

/** Whether the request log is being written, for /readyz and the log. */
export interface OutboxHealth {
  /** The last flush failed and its rows wait to be retried. */
  failing: boolean;
  failing_since: string | null;
  consecutive_failures: number;
  last_error: string | null;
  /** Log rows waiting to be written. */
  pending_rows: number;
  /** Rows dropped since start: rows the database refused one by one, or rows over the pending cap. */
  dropped_rows: number;
}

/** A failed flush is logged at once, then at most this often while it keeps failing. */
const FAILURE_LOG_EVERY_MS = 30_000;

/**
 * Everything a proxied request changes in the database — its log row, the credits it cost
 * the key and the token, a key's new health, a research task's owner — waits here and is
 * written in one transaction per flush (every second, or every 1,000 rows). No request
 * waits for a database write.
 *
 * Failures: a flush that fails because the database is unreachable, busy or full is put
 * back and tried again (and `health` says so). A flush that fails because of its data (a
 * value the database refuses) is split until the row that cannot be stored is found: the
 * rest is written and that row is dropped and logged, so one bad row never blocks the
 * queue. Text from outside is cleaned before it gets here (NUL, lone surrogates). close()
 * flushes what is left and returns what could not be written.
 */
export class Outbox {
  #pending: Batch = emptyBatch();
  #flushing: Promise<void> | null = null;
  #next: Promise<void> | null = null;
  #timer: NodeJS.Timeout | null = null;
  #urgent: NodeJS.Timeout | null = null;
  /** Refusals of the current window, by token, endpoint and status. */
  #refusals = new Map<string, LogEntry>();
  #refusalsSince = 0;
  #failingSince: number | null = null;
  #consecutiveFailures = 0;
  #lastError: string | null = null;
  #lastFailureLog = 0;
  readonly stats = { flushes: 0, rows: 0, failures: 0, dropped: 0, refusals: 0 };
  readonly #o: Required<OutboxOptions>;
  /** Each table's statements; the flush passes its transaction to them. */
  readonly #repos: Repos;

  constructor(opts: OutboxOptions) {
    const { db, dialect } = opts;
    this.#repos = {
      logs: new LogRepository(db, dialect),
      keys: new KeyRepository(db, dialect),
      accounts: new AccountRepository(db, dialect),
      tokens: new TokenRepository(db, dialect),
      research: new ResearchRepository(db),
    };
    // `??`, not spread defaults: an option passed as undefined must not erase its default.
    this.#o = {
      ...opts,
      intervalMs: opts.intervalMs ?? 1000,
      maxBatch: opts.maxBatch ?? 1000,
      urgentMs: opts.urgentMs ?? 50,
      refusalWindowMs: opts.refusalWindowMs ?? 10_000,
      maxPendingRows: opts.maxPendingRows ?? 200_000,
      publish: opts.publish ?? (async () => {}),
      onFlush: opts.onFlush ?? (() => {}),
      committed: opts.committed ?? (() => {}),
      beforeHealth: opts.beforeHealth ?? (async () => {}),
    };
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.#tick(), this.#o.intervalMs);
    this.#timer.unref();
  }

  get pendingRows(): number {
    return this.#pending.logs.length + this.#refusals.size;
  }

  get health(): OutboxHealth {
    return {
      failing: this.#failingSince !== null,
      failing_since: this.#failingSince === null ? null : new Date(this.#failingSince).toISOString(),
      consecutive_failures: this.#consecutiveFailures,
      last_error: this.#lastError,
      pending_rows: this.pendingRows,
      dropped_rows: this.stats.dropped,
    };
  }

  /** Records a finished request, and what it spent when `spend` is given. */
  record(entry: LogEntry, spend?: { keyId: number | null; tokenId: number | null; month: string; credits: number }): void {
    const p = this.#pending;
    p.logs.push(cleanEntry(entry));
    if (spend) {
      if (spend.keyId !== null) this.keySpend(spend.keyId, spend.credits, entry.ts);
      if (spend.tokenId !== null) this.tokenSpend(spend.tokenId, spend.month, spend.credits, entry.ts);
    }
    if (p.logs.length > this.#o.maxPendingRows) this.#dropOldest(p);
    if (p.logs.length >= this.#o.maxBatch && this.#failingSince === null) void this.flush();
  }

  /** Credits a key spent (and its last use), added to the stored figure at the next flush. */
  keySpend(keyId: number, credits: number, at: string): void {
    const k = this.#pending.keys.get(keyId);
    if (k) {
      k.credits += credits;
      k.lastUsed = at;
    } else this.#pending.keys.set(keyId, { credits, lastUsed: at });
  }

  /** Credits a client token spent in a month (and its last use), added at the next flush. */
  tokenSpend(tokenId: number, month: string, credits: number, at: string): void {
    const id = `${tokenId}:${month}`;
    const t = this.#pending.tokens.get(id);
    if (t) {
      t.credits += credits;
      t.lastUsed = at;
    } else this.#pending.tokens.set(id, { id: tokenId, month, credits, lastUsed: at });
  }

  /**
   * Counts a refusal. A client over its budget or RPM limit may send thousands a second:
   * they are written as one row per token, endpoint and status per window (`requests`
   * holds the count, `error` the latest message), not one row each.
   */
  refusal(r: Refusal, now = Date.now()): void {
    this.stats.refusals++;
    const id = `${r.tokenId}|${r.endpoint}|${r.status}|${r.via ?? 'rest'}`;
    const row = this.#refusals.get(id);
    if (row) {
      row.requests = (row.requests ?? 1) + 1;
      row.error = r.error;
      return;
    }
    if (this.#refusals.size === 0) this.#refusalsSince = now;
    this.#refusals.set(id, {
      ts: new Date(now).toISOString(),
      token_id: r.tokenId,
      key_id: null,
      endpoint: r.endpoint,
      status: r.status,
      attempts: 0,
      latency_ms: null,
      credits: 0,
      request_id: null,
      error: r.error,
      requests: 1,
      via: r.via ?? 'rest',
    });
  }

  keyHealth(keyId: number, status: KeyHealth, error: string): void {
    this.#pending.health.set(keyId, { status, error: storableText(error) });
    this.soon();
  }

  /** An account ran out (Tavily said so): its room is stored as this, at once. */
  accountRemaining(accountId: number, remaining: number): void {
    this.#pending.accounts.set(accountId, remaining);
    this.soon();
  }

  keyCooldown(keyId: number, untilMs: number, reason: string): void {
    const p = this.#pending.cool;
    const cur = p.get(keyId);
    if (!cur || untilMs >= cur.until) p.set(keyId, { until: untilMs, reason: storableText(reason) });
    this.soon();
  }

  /** Recorded at once: a poll may reach another instance, which looks the owner up in the database. */
  researchTask(task: ResearchTask): void {
    this.#pending.research.push({ ...task, request_id: storableText(task.request_id) });
    this.soon();
  }

  /**
   * Flushes within `urgentMs` rather than at the next tick: other instances must stop using
   * a dead or resting key within a second or two. Changes like these are rare; one timer
   * serves every change made meanwhile.
   */
  soon(): void {
    if (this.#urgent || !this.#timer) return;
    this.#urgent = setTimeout(() => {
      this.#urgent = null;
      void this.flush();
    }, this.#o.urgentMs);
    this.#urgent.unref();
  }

  /** Recorded at once too: a poll of the same task on another instance must not bill it again. */
  researchCharged(requestId: string): void {
    this.#pending.charged.add(storableText(requestId));
    this.soon();
  }

  /** The timer's flush: refusals wait for their window to close. */
  #tick(): Promise<void> {
    if (this.#refusals.size > 0 && Date.now() - this.#refusalsSince >= this.#o.refusalWindowMs) this.#takeRefusals();
    return this.flush(false);
  }

  #takeRefusals(): void {
    for (const row of this.#refusals.values()) this.#pending.logs.push(row);
    this.#refusals = new Map();
  }

  /**
   * Writes everything recorded before the call (refusals too, unless `refusals` is false), in
   * one transaction per batch. The batch is taken at once; calls made while a flush runs
   * share the one flush that follows it.
   */
  flush(refusals = true): Promise<void> {
    if (refusals && this.#refusals.size > 0) this.#takeRefusals();
    if (this.#flushing) {
      this.#next ??= this.#flushing.then(() => {
        this.#next = null;
        return this.#start();
      });
      return this.#next;
    }
    return this.#start();
  }

  #start(): Promise<void> {
    if (isEmpty(this.#pending)) return Promise.resolve();
    const batch = this.#pending;
    this.#pending = emptyBatch();
    this.#flushing = (async () => {
      const t0 = performance.now();
      try {
        const left = await this.#writeIsolating(batch);
        if (left) throw left.err;
        this.stats.flushes++;
        this.stats.rows += batch.logs.length;
        this.#o.onFlush((performance.now() - t0) / 1000, true);
        this.#recovered();
        this.#o.log.debug({ rows: batch.logs.length, ms: Math.round((performance.now() - t0) * 10) / 10 }, 'request log flushed');
      } catch (err) {
        this.#o.onFlush((performance.now() - t0) / 1000, false);
        this.#failed(err, batch.logs.length);
      } finally {
        this.#flushing = null;
      }
    })();
    return this.#flushing;
  }

  /**
   * Writes the batch in one transaction. When that fails on its data, writes the state
   * changes, the research tasks and the log rows apart, splitting each until what cannot be
   * stored is found and dropped. A failure that is not about the data (the database is
   * down, busy or full) stops the work: what is not written yet goes back in the queue, and
   * the error is returned.
   */
  async #writeIsolating(batch: Batch): Promise<{ err: unknown } | null> {
    try {
      this.#committed(await this.#o.db.transaction().execute((trx) => this.#write(trx, batch)));
      return null;
    } catch (err) {
      if (!isDataError(err)) {
        this.#putBack(batch);
        return { err };
      }
      this.#o.log.warn({ err, rows: batch.logs.length }, 'request log flush refused by the database for its data; writing the rows apart to find the one it refuses');
    }
    const parts: Batch[] = [
      { ...emptyBatch(), keys: batch.keys },
      { ...emptyBatch(), tokens: batch.tokens },
      { ...emptyBatch(), health: batch.health },
      { ...emptyBatch(), cool: batch.cool },
      { ...emptyBatch(), accounts: batch.accounts },
      { ...emptyBatch(), charged: batch.charged },
      { ...emptyBatch(), research: batch.research },
      { ...emptyBatch(), logs: batch.logs },
    ].filter((b) => !isEmpty(b));
    const unwritten: Batch[] = [];
    let failure: { err: unknown } | null = null;
    for (const part of parts) {
      if (failure) unwritten.push(part);
      else failure = await this.#bisect(part, unwritten);
    }
    // Back in the queue in their order, ahead of what arrived meanwhile.
    for (const b of unwritten.reverse()) this.#putBack(b);
    return failure;
  }

  /**
   * Writes a part alone. On a data error, splits its rows in halves until the row the
   * database refuses is alone, and drops that row. A failure of another kind stops: the part
   * (and, from the caller, everything after it) goes to `unwritten`.
   */
  async #bisect(part: Batch, unwritten: Batch[]): Promise<{ err: unknown } | null> {
    try {
      this.#committed(await this.#o.db.transaction().execute((trx) => this.#write(trx, part)));
      return null;
    } catch (err) {
      if (!isDataError(err)) {
        unwritten.push(part);
        return { err };
      }
      const field = part.logs.length > 0 ? 'logs' : 'research';
      const rows: unknown[] = part[field];
      if (rows.length > 1) {
        const half = Math.ceil(rows.length / 2);
        const first = { ...emptyBatch(), [field]: rows.slice(0, half) } as Batch;
        const second = { ...emptyBatch(), [field]: rows.slice(half) } as Batch;
        const failed = await this.#bisect(first, unwritten);
        if (failed) {
          unwritten.push(second);
          return failed;
        }
        return this.#bisect(second, unwritten);
      }
      this.stats.dropped += Math.max(1, part.logs.length);
      this.#o.log.error(
        { err, dropped: describePart(part) },
        'the database refused this request-log data; it was dropped so that the rest of the queue is written',
      );
      return null;
    }
  }

  #committed(changes: FlushedChanges | null): void {
    if (changes) this.#o.committed(changes);
  }

  #recovered(): void {
    if (this.#failingSince !== null) {
      this.#o.log.info({ failed_for_s: Math.round((Date.now() - this.#failingSince) / 1000), failures: this.#consecutiveFailures }, 'request log is being written again');
    }
    this.#failingSince = null;
    this.#consecutiveFailures = 0;
    this.#lastError = null;
  }

  #failed(err: unknown, rows: number): void {
    this.stats.failures++;
    this.#consecutiveFailures++;
    const now = Date.now();
    this.#failingSince ??= now;
    this.#lastError = err instanceof Error ? err.message : String(err);
    if (this.#consecutiveFailures === 1 || now - this.#lastFailureLog >= FAILURE_LOG_EVERY_MS) {
      this.#lastFailureLog = now;
      this.#o.log.error(
        { err, rows, pending_rows: this.pendingRows, failing_since: new Date(this.#failingSince).toISOString(), failures: this.#consecutiveFailures },
        'request log flush failed; the rows are kept and retried',
      );
    }
  }

  /** Over the cap while the database cannot be written: the oldest rows go (spend is kept). */
  #dropOldest(p: Batch): void {
    const excess = p.logs.length - this.#o.maxPendingRows;
    p.logs.splice(0, excess);
    this.stats.dropped += excess;
    const now = Date.now();
    if (now - this.#lastFailureLog >= FAILURE_LOG_EVERY_MS) {
      this.#lastFailureLog = now;
      this.#o.log.error({ dropped_rows: this.stats.dropped, max_pending_rows: this.#o.maxPendingRows }, 'the request log cannot be written and its queue is full: the oldest rows are dropped (credit spend is kept)');
    }
  }

  /**
   * Stops the timer and flushes until nothing is left (or the database keeps failing).
   * Returns the log rows that could not be written; the caller must say so.
   */
  async close(): Promise<{ unwritten: number }> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    if (this.#urgent) clearTimeout(this.#urgent);
    this.#urgent = null;
    for (let attempt = 0; attempt < 5; attempt++) {
      const failures = this.stats.failures;
      await this.flush();
      if (isEmpty(this.#pending)) return { unwritten: 0 };
      if (this.stats.failures > failures) await new Promise((r) => setTimeout(r, 200));
    }
    const unwritten = this.#pending.logs.length;
    this.#o.log.error(
      { unwritten_rows: unwritten, last_error: this.#lastError },
      'request log rows (and the credit spend that goes with them) could not be written before exit',
    );
    return { unwritten: Math.max(unwritten, isEmpty(this.#pending) ? 0 : 1) };
  }

  /** Puts a failed batch back in front of what arrived meanwhile. */
  #putBack(b: Batch): void {
    const p = this.#pending;
    p.logs = b.logs.length === 0 ? p.logs : [...b.logs, ...p.logs];
    if (p.logs.length > this.#o.maxPendingRows) this.#dropOldest(p);
    for (const [id, k] of b.keys) {
      const cur = p.keys.get(id);
      p.keys.set(id, cur ? { credits: cur.credits + k.credits, lastUsed: cur.lastUsed } : k);
    }
    for (const [id, t] of b.tokens) {
      const cur = p.tokens.get(id);
      p.tokens.set(id, cur ? { ...cur, credits: cur.credits + t.credits } : t);
    }
    for (const [id, h] of b.health) if (!p.health.has(id)) p.health.set(id, h);
    for (const [id, r] of b.accounts) if (!p.accounts.has(id)) p.accounts.set(id, r);
    for (const [id, c] of b.cool) {
      const cur = p.cool.get(id);
      if (!cur || c.until > cur.until) p.cool.set(id, c);
    }
    p.research = [...b.research, ...p.research];
    for (const r of b.charged) p.charged.add(r);
  }

  /**
   * Writes the batch, each table through its repository, in the locking order; returns the
   * state changes it made (published to the others), if any.
   */
  async #write(trx: Db, b: Batch): Promise<FlushedChanges | null> {
    const r = this.#repos;
    const now = new Date().toISOString();
    await r.logs.insertBatch(b.logs.map(storedLog), trx);
    if (this.#o.dialect === 'postgres') await lockInOrder(r, trx, b);
    const spend = [...b.keys].map(([id, k]) => ({ id, credits: k.credits, lastUsed: k.lastUsed }));
    await r.keys.applySpend(spend, trx);
    await r.accounts.applyKeySpend(spend, trx);
    await r.accounts.setRemaining([...b.accounts], now, trx);
    await r.tokens.applySpend([...b.tokens.values()], trx);
    if (b.health.size > 0) {
      const health = [...b.health].map(([id, h]) => ({ id, status: h.status, error: h.error }));
      await this.#o.beforeHealth(trx, health.map((h) => ({ id: h.id, status: h.status, reason: h.error })));
      await r.keys.setHealth(health, now, trx);
    }
    await r.keys.setCooldowns([...b.cool].map(([id, c]) => ({ id, until: new Date(c.until).toISOString(), reason: c.reason })), trx);
    await r.research.insertMany(b.research, trx);
    await r.research.markCharged([...b.charged], now, trx);
    if (b.keys.size > 0 || b.tokens.size > 0 || b.health.size > 0 || b.cool.size > 0 || b.accounts.size > 0 || b.charged.size > 0) {
      const changes: FlushedChanges = {
        keys: [...b.keys].filter(([, k]) => k.credits > 0).map(([id, k]) => [id, k.credits]),
        tokens: [...b.tokens.values()].filter((t) => t.credits > 0).map((t) => [t.id, t.month, t.credits]),
        health: [...b.health].map(([id, h]) => [id, h.status]),
        cool: [...b.cool].map(([id, c]) => [id, c.until]),
        accounts: [...b.accounts],
        charged: [...b.charged],
      };
      await this.#o.publish(trx, changes);
      return changes;
    }
    return null;
  }
}

interface Repos {
  logs: LogRepository;
  keys: KeyRepository;
  accounts: AccountRepository;
  tokens: TokenRepository;
  research: ResearchRepository;
}

/**
 * Locks the rows a flush updates, table by table in the order the flush writes them and by id
 * within each (PostgreSQL). Two instances flushing at once update the same keys, accounts and
 * tokens; an UPDATE … FROM locks rows in whatever order its plan reads them, and two such
 * orders deadlock (one flush is then aborted and its batch waits for the next tick).
 */
async function lockInOrder(r: Repos, trx: Db, b: Batch): Promise<void> {
  await r.keys.lockInOrder([...new Set([...b.keys.keys(), ...b.health.keys(), ...b.cool.keys()])], trx);
  await r.accounts.lockInOrder([...b.accounts.keys()], [...b.keys].filter(([, k]) => k.credits > 0).map(([id]) => id), trx);
  await r.tokens.lockInOrder([...new Set([...b.tokens.values()].map((t) => t.id))], trx);
}

/** A log entry as stored. */
function storedLog(l: LogEntry): NewLogRow {
  const { failovers, requests, via, cache, credits_saved, ...rest } = l;
  return { ...rest, requests: requests ?? 1, via: via ?? 'rest', failovers: encodeFailovers(failovers), cache: cache ?? null, credits_saved: credits_saved ?? 0 };
}

function cleanEntry(e: LogEntry): LogEntry {
  const error = storableOrNull(e.error ?? null);
  const requestId = storableOrNull(e.request_id ?? null);
  return error === (e.error ?? null) && requestId === (e.request_id ?? null) ? e : { ...e, error, request_id: requestId };
}

/**
 * The database refused the data (or JavaScript could not encode a value for it): the same
 * rows would fail again, so they are isolated rather than retried.
 */
function isDataError(err: unknown): boolean {
  if (dbFault(err) === 'data') return true;
  return (err instanceof TypeError || err instanceof RangeError) && (err as { code?: unknown }).code === undefined;
}

/** What a dropped part held, for the log: ids and times, never more than a few rows. */
function describePart(b: Batch): unknown {
  if (b.logs.length > 0) return b.logs.slice(0, 3).map((l) => ({ ts: l.ts, token_id: l.token_id, key_id: l.key_id, endpoint: l.endpoint, status: l.status, request_id: l.request_id }));
  if (b.research.length > 0) return b.research.slice(0, 3).map((r) => ({ request_id: r.request_id, key_id: r.key_id }));
  return { keys: b.keys.size, tokens: b.tokens.size, health: b.health.size, cool: b.cool.size, accounts: b.accounts.size, charged: b.charged.size };
}

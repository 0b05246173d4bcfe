import { sql } from 'kysely';
import type { Logger } from 'pino';
import type { Db, DialectKind } from '../db/database.js';
import { jsonRows } from '../db/json-rows.js';
import type { KeyHealth, NewLogRow } from '../db/schema.js';

export type LogEntry = Omit<NewLogRow, 'id'>;

const LOG_COLUMNS = [
  ['ts', 'text'],
  ['token_id', 'integer'],
  ['key_id', 'integer'],
  ['endpoint', 'text'],
  ['status', 'integer'],
  ['attempts', 'integer'],
  ['latency_ms', 'double precision'],
  ['credits', 'double precision'],
  ['request_id', 'text'],
  ['error', 'text'],
] as const satisfies ReadonlyArray<readonly [keyof LogEntry, string]>;

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
  /** key id → epoch ms until which it rests after a 429. */
  cool: Map<number, number>;
  research: ResearchTask[];
  charged: Set<string>;
}

const emptyBatch = (): Batch => ({ logs: [], keys: new Map(), tokens: new Map(), health: new Map(), cool: new Map(), research: [], charged: new Set() });
const isEmpty = (b: Batch) =>
  b.logs.length === 0 &&
  b.keys.size === 0 &&
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
  /** Research tasks billed now (no other instance may bill them again). */
  charged: string[];
}

export interface WriteBehindOptions {
  db: Db;
  dialect: DialectKind;
  log: Logger;
  /** Flush at least this often. */
  intervalMs?: number;
  /** Flush as soon as this many log rows wait. */
  maxBatch?: number;
  /** How soon a change other instances must learn quickly (a key's health, a cooldown) is flushed. */
  urgentMs?: number;
  /**
   * Runs inside each flush's transaction, after its writes: tells the other instances what
   * changed (PostgreSQL delivers a NOTIFY on commit, and drops it on rollback).
   */
  publish?: (trx: Db, changes: FlushedChanges) => Promise<void>;
}

/**
 * Everything a proxied request changes in the database — its log row, the credits it cost
 * the key and the token, a key's new health, a research task's owner — waits here and is
 * written in one transaction per flush (every second, or every 1,000 rows). No request
 * waits for a database write. A failed flush is put back and tried again; close() flushes
 * what is left.
 */
export class WriteBehind {
  #pending: Batch = emptyBatch();
  #flushing: Promise<void> | null = null;
  #next: Promise<void> | null = null;
  #timer: NodeJS.Timeout | null = null;
  #urgent: NodeJS.Timeout | null = null;
  readonly stats = { flushes: 0, rows: 0, failures: 0 };
  readonly #o: Required<WriteBehindOptions>;

  constructor(opts: WriteBehindOptions) {
    // `??`, not spread defaults: an option passed as undefined must not erase its default.
    this.#o = {
      ...opts,
      intervalMs: opts.intervalMs ?? 1000,
      maxBatch: opts.maxBatch ?? 1000,
      urgentMs: opts.urgentMs ?? 50,
      publish: opts.publish ?? (async () => {}),
    };
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.flush(), this.#o.intervalMs);
    this.#timer.unref();
  }

  get pendingRows(): number {
    return this.#pending.logs.length;
  }

  /** Records a finished request and what it spent. */
  record(entry: LogEntry, spend?: { keyId: number | null; tokenId: number | null; month: string; credits: number }): void {
    const p = this.#pending;
    p.logs.push(entry);
    if (spend) {
      if (spend.keyId !== null) {
        const k = p.keys.get(spend.keyId);
        if (k) {
          k.credits += spend.credits;
          k.lastUsed = entry.ts;
        } else p.keys.set(spend.keyId, { credits: spend.credits, lastUsed: entry.ts });
      }
      if (spend.tokenId !== null) {
        const id = `${spend.tokenId}:${spend.month}`;
        const t = p.tokens.get(id);
        if (t) {
          t.credits += spend.credits;
          t.lastUsed = entry.ts;
        } else p.tokens.set(id, { id: spend.tokenId, month: spend.month, credits: spend.credits, lastUsed: entry.ts });
      }
    }
    if (p.logs.length >= this.#o.maxBatch) void this.flush();
  }

  keyHealth(keyId: number, status: KeyHealth, error: string): void {
    this.#pending.health.set(keyId, { status, error });
    this.soon();
  }

  keyCooldown(keyId: number, untilMs: number): void {
    const p = this.#pending.cool;
    p.set(keyId, Math.max(untilMs, p.get(keyId) ?? 0));
    this.soon();
  }

  /** Recorded at once: a poll may reach another instance, which looks the owner up in the database. */
  researchTask(task: ResearchTask): void {
    this.#pending.research.push(task);
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
    this.#pending.charged.add(requestId);
    this.soon();
  }

  /**
   * Writes everything recorded before the call, in one transaction per batch. The batch is
   * taken at once; calls made while a flush runs share the one flush that follows it.
   */
  flush(): Promise<void> {
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
        await this.#o.db.transaction().execute((trx) => this.#write(trx, batch));
        this.stats.flushes++;
        this.stats.rows += batch.logs.length;
        this.#o.log.debug({ rows: batch.logs.length, ms: Math.round((performance.now() - t0) * 10) / 10 }, 'request log flushed');
      } catch (err) {
        this.stats.failures++;
        this.#putBack(batch);
        this.#o.log.error({ err, rows: batch.logs.length }, 'request log flush failed; the rows are kept and retried');
      } finally {
        this.#flushing = null;
      }
    })();
    return this.#flushing;
  }

  /** Stops the timer and flushes until nothing is left (or the database keeps failing). */
  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    if (this.#urgent) clearTimeout(this.#urgent);
    this.#urgent = null;
    for (let attempt = 0; attempt < 5; attempt++) {
      const failures = this.stats.failures;
      await this.flush();
      if (isEmpty(this.#pending)) return;
      if (this.stats.failures > failures) await new Promise((r) => setTimeout(r, 200));
    }
    if (!isEmpty(this.#pending)) {
      this.#o.log.error({ rows: this.#pending.logs.length }, 'request log rows could not be written before exit');
    }
  }

  /** Puts a failed batch back in front of what arrived meanwhile. */
  #putBack(b: Batch): void {
    const p = this.#pending;
    p.logs = [...b.logs, ...p.logs];
    for (const [id, k] of b.keys) {
      const cur = p.keys.get(id);
      p.keys.set(id, cur ? { credits: cur.credits + k.credits, lastUsed: cur.lastUsed } : k);
    }
    for (const [id, t] of b.tokens) {
      const cur = p.tokens.get(id);
      p.tokens.set(id, cur ? { ...cur, credits: cur.credits + t.credits } : t);
    }
    for (const [id, h] of b.health) if (!p.health.has(id)) p.health.set(id, h);
    for (const [id, until] of b.cool) p.cool.set(id, Math.max(until, p.cool.get(id) ?? 0));
    p.research = [...b.research, ...p.research];
    for (const r of b.charged) p.charged.add(r);
  }

  async #write(trx: Db, b: Batch): Promise<void> {
    const { dialect } = this.#o;
    const now = new Date().toISOString();
    // One statement and one bound parameter however many rows: a multi-row VALUES insert of
    // 1,000 rows cost more to parse than to run, and on SQLite that blocks the event loop.
    if (b.logs.length > 0) {
      const rows = b.logs.map((l) => LOG_COLUMNS.map(([c]) => l[c as keyof LogEntry] ?? null));
      await sql`
        insert into request_logs (${sql.join(LOG_COLUMNS.map(([c]) => sql.ref(c)))})
        select * from ${jsonRows(dialect, LOG_COLUMNS, rows)}`.execute(trx);
    }
    if (b.keys.size > 0) {
      const rows = [...b.keys].map(([id, k]) => [id, k.credits, k.lastUsed]);
      const cols = [['id', 'integer'], ['credits', 'double precision'], ['last_used', 'text']] as const;
      await sql`
        update tavily_keys set
          remaining_quota = case when remaining_quota - v.credits < 0 then 0 else remaining_quota - v.credits end,
          last_used_at = case when last_used_at is null or last_used_at < v.last_used then v.last_used else last_used_at end
        from ${jsonRows(dialect, cols, rows)}
        where tavily_keys.id = v.id`.execute(trx);
    }
    if (b.tokens.size > 0) {
      const rows = [...b.tokens.values()].map((t) => [t.id, t.month, t.credits, t.lastUsed]);
      const cols = [['id', 'integer'], ['month', 'text'], ['credits', 'double precision'], ['last_used', 'text']] as const;
      await sql`
        update client_tokens set
          month_spent = case when spent_month = v.month then month_spent + v.credits else v.credits end,
          spent_month = v.month,
          last_used_at = v.last_used
        from ${jsonRows(dialect, cols, rows)}
        where client_tokens.id = v.id and v.month >= client_tokens.spent_month`.execute(trx);
    }
    if (b.health.size > 0) {
      const rows = [...b.health].map(([id, h]) => [id, h.status, h.error]);
      const cols = [['id', 'integer'], ['status', 'text'], ['error', 'text']] as const;
      await sql`
        update tavily_keys set status = v.status, last_error = v.error, updated_at = ${now}
        from ${jsonRows(dialect, cols, rows)}
        where tavily_keys.id = v.id`.execute(trx);
    }
    if (b.cool.size > 0) {
      const rows = [...b.cool].map(([id, until]) => [id, new Date(until).toISOString()]);
      const cols = [['id', 'integer'], ['until', 'text']] as const;
      await sql`
        update tavily_keys set cooldown_until = v.until
        from ${jsonRows(dialect, cols, rows)}
        where tavily_keys.id = v.id and (cooldown_until is null or cooldown_until < v.until)`.execute(trx);
    }
    if (b.research.length > 0) {
      await trx
        .insertInto('research_tasks')
        .values(b.research)
        .onConflict((oc) => oc.column('request_id').doNothing())
        .execute();
    }
    if (b.charged.size > 0) {
      await trx
        .updateTable('research_tasks')
        .set({ charged_at: now })
        .where('request_id', 'in', [...b.charged])
        .execute();
    }
    if (b.keys.size > 0 || b.tokens.size > 0 || b.health.size > 0 || b.cool.size > 0 || b.charged.size > 0) {
      await this.#o.publish(trx, {
        keys: [...b.keys].filter(([, k]) => k.credits > 0).map(([id, k]) => [id, k.credits]),
        tokens: [...b.tokens.values()].filter((t) => t.credits > 0).map((t) => [t.id, t.month, t.credits]),
        health: [...b.health].map(([id, h]) => [id, h.status]),
        cool: [...b.cool],
        charged: [...b.charged],
      });
    }
  }
}

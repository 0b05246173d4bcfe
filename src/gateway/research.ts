import type { Db } from '../db/database.js';
import type { Outbox } from '../pool/outbox.js';
import type { Hold } from './budget.js';

export interface Task {
  keyId: number;
  tokenId: number | null;
  expiresAt: number;
  charged: boolean;
  /**
   * The credits its creation reserved of the token's budget (the most its model can cost),
   * held here until a poll bills it (on this instance); null when none are held here.
   */
  hold: Hold | null;
}

/** Research tasks live this long (polls of older tasks answer 404). */
export const RESEARCH_TTL_MS = 7 * 24 * 3600_000;
/**
 * A task's reservation is released this long after its creation if no poll has billed it by
 * then (Tavily's own MCP server gives a task 15 minutes at most); a client that never polls
 * must not hold its token's budget for the task's week.
 */
export const RESEARCH_HOLD_MS = 30 * 60_000;

/**
 * Which key created each research task, so that polls go to that key. Kept in memory for
 * the polls that follow at once, and in the database (through the write-behind buffer) for
 * restarts and other instances.
 */
export class ResearchRegistry {
  readonly #tasks = new Map<string, Task>();
  /** Tasks holding a reservation, oldest first, with when it lapses. */
  readonly #holding = new Map<string, { task: Task; until: number }>();
  #timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly db: Db,
    private readonly outbox: Outbox,
    /** Ends a task's hold without charging it (the ledger's release). */
    private readonly release: (hold: Hold | null) => void,
  ) {}

  /** Releases lapsed holds every minute. */
  start(): void {
    this.#timer ??= setInterval(() => this.lapse(), 60_000);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** Releases the holds of tasks no poll billed within RESEARCH_HOLD_MS. */
  lapse(now = Date.now()): void {
    for (const [id, h] of this.#holding) {
      if (h.until > now) break;
      this.#unhold(id, h.task);
    }
  }

  #unhold(requestId: string, task: Task): void {
    this.#holding.delete(requestId);
    this.release(task.hold);
    task.hold = null;
  }

  remember(requestId: string, keyId: number, tokenId: number | null, hold: Hold | null = null, now = Date.now()): void {
    const task: Task = { keyId, tokenId, expiresAt: now + RESEARCH_TTL_MS, charged: false, hold };
    this.#tasks.set(requestId, task);
    if (hold) this.#holding.set(requestId, { task, until: now + RESEARCH_HOLD_MS });
    this.outbox.researchTask({
      request_id: requestId,
      key_id: keyId,
      token_id: tokenId,
      created_at: new Date(now).toISOString(),
      expires_at: new Date(task.expiresAt).toISOString(),
    });
  }

  async lookup(requestId: string, now = Date.now()): Promise<Task | null> {
    const hit = this.#tasks.get(requestId);
    if (hit) return hit.expiresAt > now ? hit : null;
    const row = await this.db
      .selectFrom('research_tasks')
      .select(['key_id', 'token_id', 'expires_at', 'charged_at'])
      .where('request_id', '=', requestId)
      .executeTakeFirst();
    if (!row || Date.parse(row.expires_at) <= now) return null;
    const task: Task = { keyId: row.key_id, tokenId: row.token_id, expiresAt: Date.parse(row.expires_at), charged: row.charged_at !== null, hold: null };
    this.#tasks.set(requestId, task);
    return task;
  }

  /**
   * The first time only (research is billed once, when a poll first sees it done): the task's
   * hold, for the caller to settle with the credits it bills (null when it holds none here).
   * `false` when it was billed already.
   */
  charge(requestId: string, task: Task): Hold | null | false {
    if (task.charged) return false;
    task.charged = true;
    this.outbox.researchCharged(requestId);
    const hold = task.hold;
    task.hold = null;
    this.#holding.delete(requestId);
    return hold;
  }

  /** Another instance billed this task: a poll here must not bill it again, and its hold here ends. */
  markCharged(requestId: string): void {
    const task = this.#tasks.get(requestId);
    if (!task) return;
    task.charged = true;
    if (task.hold) this.#unhold(requestId, task);
  }

  /** The task's polls may no longer be made (its token was revoked): its hold ends. */
  abandon(requestId: string, task: Task): void {
    if (task.hold) this.#unhold(requestId, task);
  }

  prune(now = Date.now()): void {
    this.lapse(now);
    for (const [id, t] of this.#tasks) if (t.expiresAt <= now) this.#tasks.delete(id);
  }
}

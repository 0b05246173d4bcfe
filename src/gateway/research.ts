import type { Db } from '../db/database.js';
import type { WriteBehind } from '../logs/write-behind.js';

interface Task {
  keyId: number;
  tokenId: number | null;
  expiresAt: number;
  charged: boolean;
}

/** Research tasks live this long (polls of older tasks answer 404). */
export const RESEARCH_TTL_MS = 7 * 24 * 3600_000;

/**
 * Which key created each research task, so that polls go to that key. Kept in memory for
 * the polls that follow at once, and in the database (through the write-behind buffer) for
 * restarts and other instances.
 */
export class ResearchRegistry {
  readonly #tasks = new Map<string, Task>();

  constructor(
    private readonly db: Db,
    private readonly writeBehind: WriteBehind,
  ) {}

  remember(requestId: string, keyId: number, tokenId: number | null, now = Date.now()): void {
    const task: Task = { keyId, tokenId, expiresAt: now + RESEARCH_TTL_MS, charged: false };
    this.#tasks.set(requestId, task);
    this.writeBehind.researchTask({
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
    const task: Task = { keyId: row.key_id, tokenId: row.token_id, expiresAt: Date.parse(row.expires_at), charged: row.charged_at !== null };
    this.#tasks.set(requestId, task);
    return task;
  }

  /** True the first time only: research is billed once, when a poll first sees it done. */
  charge(requestId: string, task: Task): boolean {
    if (task.charged) return false;
    task.charged = true;
    this.writeBehind.researchCharged(requestId);
    return true;
  }

  /** Another instance billed this task: a poll here must not bill it again. */
  markCharged(requestId: string): void {
    const task = this.#tasks.get(requestId);
    if (task) task.charged = true;
  }

  prune(now = Date.now()): void {
    for (const [id, t] of this.#tasks) if (t.expiresAt <= now) this.#tasks.delete(id);
  }
}

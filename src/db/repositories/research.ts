import type { Kysely } from 'kysely';
import type { Database, ResearchTaskTable } from '../schema.js';

type Executor = Kysely<Database>;

/** Research tasks: who made each (its key and token) until it is billed and expires. */
export class ResearchRepository {
  constructor(private readonly db: Executor) {}

  /** Tasks made since the outbox's last flush; one already stored (another instance's) is kept. */
  async insertMany(rows: readonly Omit<ResearchTaskTable, 'charged_at'>[], ex: Executor = this.db): Promise<void> {
    if (rows.length === 0) return;
    await ex
      .insertInto('research_tasks')
      .values([...rows])
      .onConflict((oc) => oc.column('request_id').doNothing())
      .execute();
  }

  /** Tasks whose answer was billed (to the token that made them), now. */
  async markCharged(requestIds: readonly string[], now: string, ex: Executor = this.db): Promise<void> {
    if (requestIds.length === 0) return;
    await ex.updateTable('research_tasks').set({ charged_at: now }).where('request_id', 'in', [...requestIds]).execute();
  }
}

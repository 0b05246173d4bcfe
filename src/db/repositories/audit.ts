import type { Kysely, Selectable } from 'kysely';
import { storableText } from '../../text.js';
import type { AuditLogTable, Database } from '../schema.js';

type Executor = Kysely<Database>;

/** An audit row, its targets read. */
export type AuditRow = Omit<Selectable<AuditLogTable>, 'targets'> & { targets: Record<string, unknown> | null };

export interface NewAuditRow {
  at?: string;
  action: string;
  targets?: Record<string, unknown> | null;
  outcome?: string;
  remote_addr: string | null;
  user_agent: string | null;
}

export interface AuditFilter {
  action?: string;
  from?: string;
  to?: string;
  /** Rows older than this id (the `next` of the previous page). */
  before?: number;
  limit: number;
}

/** The audit log's table. */
export class AuditRepository {
  constructor(private readonly db: Executor) {}

  /** Writes rows in one statement, in the caller's transaction when given one. */
  async record(rows: readonly NewAuditRow[], ex: Executor = this.db): Promise<void> {
    if (rows.length === 0) return;
    const now = new Date().toISOString();
    await ex
      .insertInto('audit_log')
      .values(
        rows.map((r) => ({
          at: r.at ?? now,
          action: r.action,
          targets: r.targets ? JSON.stringify(r.targets) : null,
          outcome: r.outcome ?? 'ok',
          remote_addr: r.remote_addr === null ? null : storableText(r.remote_addr).slice(0, 100),
          user_agent: r.user_agent === null ? null : storableText(r.user_agent).slice(0, 300),
        })),
      )
      .execute();
  }

  /** Newest first. An action ending in `.` (or a bare family such as `keys`) matches the family. */
  async list(f: AuditFilter): Promise<{ items: AuditRow[]; next: number | null }> {
    let q = this.db.selectFrom('audit_log').selectAll().orderBy('id', 'desc').limit(f.limit + 1);
    if (f.action) q = f.action.includes('.') ? q.where('action', '=', f.action) : q.where('action', 'like', `${f.action.replace(/[\\%_]/g, '')}.%`);
    if (f.from) q = q.where('at', '>=', f.from);
    if (f.to) q = q.where('at', '<', f.to);
    if (f.before !== undefined) q = q.where('id', '<', f.before);
    const rows = await q.execute();
    const page = rows.slice(0, f.limit);
    return {
      items: page.map((r) => ({ ...r, targets: r.targets ? (JSON.parse(r.targets) as Record<string, unknown>) : null })),
      next: rows.length > f.limit ? page.at(-1)!.id : null,
    };
  }

  async prune(before: string, ex: Executor = this.db): Promise<number> {
    const r = await ex.deleteFrom('audit_log').where('at', '<', before).executeTakeFirst();
    return Number(r.numDeletedRows ?? 0);
  }
}

import type { FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Db } from '../db/database.js';
import type { AuditRepository, NewAuditRow } from '../db/repositories/audit.js';

/** What the audit log records: a family and a verb. */
export type AuditAction =
  | 'keys.add'
  | 'keys.update'
  | 'keys.delete'
  | 'keys.bulk'
  | 'keys.export'
  | 'keys.refresh'
  | 'accounts.create'
  | 'accounts.update'
  | 'accounts.delete'
  | 'accounts.add_keys'
  | 'tokens.create'
  | 'tokens.update'
  | 'tokens.revoke'
  | 'alerts.rules'
  | 'alerts.sink_create'
  | 'alerts.sink_update'
  | 'alerts.sink_delete'
  | 'admin.signin_failed'
  | 'gateway.unknown_token';

/** Who asked for a change: the address (as the server trusts it) and the user agent. */
export type Actor = Pick<NewAuditRow, 'remote_addr' | 'user_agent'>;

/** The actor of a request. */
export function actorOf(req: FastifyRequest): Actor {
  const ua = req.headers['user-agent'];
  return { remote_addr: req.ip ?? null, user_agent: typeof ua === 'string' ? ua : null };
}

/** Refusals counted per address and written as one row a minute each, so that a scanner cannot flood the log. */
const MAX_TRACKED = 10_000;

/**
 * The audit log: admin changes written in the transaction of the change (`record`), and
 * refusals (a wrong admin token, an unknown client token) counted per remote address and
 * written in bounded form: one row per kind and address a minute, saying how many.
 */
export class AuditLog {
  readonly #refusals = new Map<string, { action: AuditAction; remote: string | null; ua: string | null; n: number; since: string }>();
  #timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly repo: AuditRepository,
    private readonly log: Logger,
    private readonly flushMs = 60_000,
  ) {}

  /** One admin change, in the change's transaction. */
  record(actor: Actor, ex: Db, action: AuditAction, targets?: Record<string, unknown>): Promise<void> {
    return this.repo.record([{ action, targets: targets ?? null, remote_addr: actor.remote_addr, user_agent: actor.user_agent }], ex);
  }

  /** A refused credential: counted now, written at the next flush. */
  refused(req: FastifyRequest, action: 'admin.signin_failed' | 'gateway.unknown_token'): void {
    const { remote_addr: remote, user_agent: ua } = actorOf(req);
    let key = `${action} ${remote}`;
    if (!this.#refusals.has(key) && this.#refusals.size >= MAX_TRACKED) key = `${action} (other addresses)`;
    const r = this.#refusals.get(key);
    if (r) r.n++;
    else this.#refusals.set(key, { action, remote: key.endsWith('(other addresses)') ? null : remote, ua, n: 1, since: new Date().toISOString() });
    if (!this.#timer) {
      this.#timer = setTimeout(() => void this.flush(), this.flushMs);
      this.#timer.unref();
    }
  }

  /** Writes the refusals counted so far (one statement). */
  async flush(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#refusals.size === 0) return;
    const rows: NewAuditRow[] = [...this.#refusals.values()].map((r) => ({
      action: r.action,
      outcome: 'refused',
      targets: { attempts: r.n, since: r.since },
      remote_addr: r.remote,
      user_agent: r.ua,
    }));
    this.#refusals.clear();
    try {
      await this.repo.record(rows);
    } catch (err) {
      this.log.error({ err, rows: rows.length }, 'could not write refused sign-ins to the audit log');
    }
  }
}

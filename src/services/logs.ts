import type { AuditFilter, AuditRepository } from '../db/repositories/audit.js';
import type { LogFilter, LogRepository } from '../db/repositories/logs.js';
import { ApiError } from '../http/api-error.js';

const DAY_MS = 24 * 3600_000;

/**
 * What happened: the request log (its rows and its statistics) and the audit log. The request
 * log is read after the outbox's pending rows are written, so that a request just answered is
 * in it.
 */
export class LogService {
  constructor(
    private readonly d: {
      logs: LogRepository;
      audit: AuditRepository;
      /** Writes what the gateway has not written yet. */
      flush(): Promise<unknown>;
    },
  ) {}

  async list(f: LogFilter) {
    await this.d.flush();
    const page = await this.d.logs.list(f);
    return { items: page.rows, next_cursor: page.next === null ? null : String(page.next) };
  }

  /** Requests, credits and errors over [from, to): the last 7 days by default. */
  async stats(range: { from?: string; to?: string }) {
    const to = range.to ? new Date(range.to) : new Date(Date.now() + 1000);
    const from = range.from ? new Date(range.from) : new Date(to.getTime() - 7 * DAY_MS);
    if (from >= to) throw new ApiError(400, 'invalid_request', 'querystring.from must be before querystring.to');
    await this.d.flush();
    return { from: from.toISOString(), to: to.toISOString(), ...(await this.d.logs.stats(from.toISOString(), to.toISOString())) };
  }

  audit(f: AuditFilter) {
    return this.d.audit.list(f);
  }
}

import type { Logger } from 'pino';
import type { Alerts } from '../alerts/alerts.js';
import type { AuditRepository } from '../db/repositories/audit.js';
import type { LogRepository } from '../db/repositories/logs.js';
import type { ResearchRegistry } from '../gateway/research.js';

const DAY_MS = 86_400_000;

/**
 * Deletes what is older than LOG_RETENTION_DAYS (request-log rows, expired research tasks,
 * alert events and their deliveries) and audit rows older than AUDIT_RETENTION_DAYS. Returns
 * the request-log rows deleted.
 */
export async function pruneOld(
  d: { logs: LogRepository; research: ResearchRegistry; alerts: Alerts; audit: AuditRepository; retentionDays: number; auditRetentionDays: number; log: Logger },
  now = Date.now(),
): Promise<number> {
  const before = new Date(now - d.retentionDays * DAY_MS).toISOString();
  const n = await d.logs.prune(before, new Date(now).toISOString());
  d.research.prune(now);
  const events = await d.alerts.prune(before);
  await d.audit.prune(new Date(now - d.auditRetentionDays * DAY_MS).toISOString());
  if (n > 0 || events > 0) d.log.info({ rows: n, alert_events: events, days: d.retentionDays }, 'pruned old request-log rows and alert events');
  return n;
}

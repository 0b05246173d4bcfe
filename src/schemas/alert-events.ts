import { count } from '../text.js';

/**
 * The alert events, listed once: their type, what they mean, and how a message about them
 * reads. Everything else (the admin API's schema, the dashboard's choices, the sinks' texts)
 * derives from this table.
 */
export const ALERT_TYPES = {
  'key.invalid': { title: 'Keys invalid', description: 'Tavily rejected keys (401); they serve nothing until a refresh finds them valid' },
  'key.exhausted': { title: 'Keys exhausted', description: 'keys (or their accounts) ran out of credits (432, 433, or a refresh found no room)' },
  'key.active': { title: 'Keys active again', description: 'keys that were invalid or exhausted answer again with credits' },
  'pool.credits_low': { title: 'Pool credits low', description: 'the credits the pool can spend are below the threshold, or will last fewer days than set at the last 7 days’ rate' },
  'pool.keys_low': { title: 'Few active keys', description: 'fewer keys than set can serve (active and enabled)' },
  'token.budget': { title: 'Token budget', description: 'a client token reached 80%, 90% or 100% of its monthly budget (each once a month)' },
  'refresh.failures': { title: 'Refresh failures', description: 'more than the set share of a refresh’s /usage checks failed without an answer about the key (errors, timeouts, 5xx; a 401 or 432 has its own event)' },
  'instance.feed_lost': { title: 'Change feed lost', description: 'PostgreSQL: an instance has not heard the others’ changes for longer than set' },
  'account.drift': { title: 'Usage elsewhere', description: 'Tavily counted more usage on keys or accounts than the pool spent: they are used outside it' },
  test: { title: 'Test', description: 'a test message sent from the admin API or the dashboard' },
} as const satisfies Record<string, { title: string; description: string }>;

export type AlertType = keyof typeof ALERT_TYPES;
export const ALERT_TYPE_NAMES = Object.keys(ALERT_TYPES) as AlertType[];

/** Whether a condition started to hold (firing) or stopped (resolved); key events are plain changes. */
export type AlertState = 'firing' | 'resolved';

/** A key named in an event: never the key itself. */
export interface KeyRef {
  id: number;
  key_masked: string;
  label: string | null;
  reason?: string | null;
}

/** An event about to be recorded in the outbox. */
export interface NewAlertEvent {
  type: AlertType;
  summary: string;
  data: Record<string, unknown>;
}

/** An event as stored and delivered. */
export interface AlertEvent extends NewAlertEvent {
  id: number;
  created_at: string;
}

/** Keys listed in a message; the rest are counted ("and 180 more"). The event's data holds them all. */
const LISTED = 20;

/** An event about keys that changed: one event for any number of keys. */
export function keysEvent(type: 'key.invalid' | 'key.exhausted' | 'key.active', keys: KeyRef[], source: string): NewAlertEvent {
  const n = keys.length;
  const what = type === 'key.invalid' ? 'became invalid' : type === 'key.exhausted' ? 'ran out of credits' : 'are active again';
  const verb = n === 1 && type === 'key.active' ? 'is active again' : what;
  return { type, summary: `${count(n, 'key')} ${verb}`, data: { count: n, source, keys } };
}

/** The lines of a message: a title and the details, plain text (each sink formats them). */
export function describe(e: Pick<AlertEvent, 'type' | 'summary' | 'data'>): { title: string; lines: string[] } {
  const d = e.data;
  const lines: string[] = [];
  const state = d.state === 'resolved' ? ' (resolved)' : '';
  switch (e.type) {
    case 'key.invalid':
    case 'key.exhausted':
    case 'key.active': {
      const keys = (d.keys as KeyRef[] | undefined) ?? [];
      for (const k of keys.slice(0, LISTED)) {
        lines.push(`${k.key_masked}${k.label ? ` (${k.label})` : ''}${k.reason ? `: ${k.reason}` : ''}`);
      }
      if (keys.length > LISTED) lines.push(`and ${keys.length - LISTED} more`);
      break;
    }
    case 'account.drift': {
      const findings = (d.findings as Array<{ key_masked: string | null; account: string | null; tavily: number; pool: number }> | undefined) ?? [];
      for (const f of findings.slice(0, LISTED)) {
        lines.push(`${f.account ? `account ${f.account}` : f.key_masked}: Tavily counted ${f.tavily}, the pool spent ${f.pool}`);
      }
      if (findings.length > LISTED) lines.push(`and ${findings.length - LISTED} more`);
      break;
    }
    case 'refresh.failures': {
      const examples = (d.examples as Array<{ key_masked: string; error: string }> | undefined) ?? [];
      for (const x of examples) lines.push(`${x.key_masked}: ${x.error}`);
      break;
    }
    default:
      break;
  }
  return { title: `${e.summary}${state}`, lines };
}

/** The whole message as plain text (Slack and Telegram texts are built from the same lines). */
export function plainText(events: ReadonlyArray<Pick<AlertEvent, 'type' | 'summary' | 'data'>>): string {
  return events
    .map((e) => {
      const { title, lines } = describe(e);
      return [title, ...lines.map((l) => `• ${l}`)].join('\n');
    })
    .join('\n\n');
}

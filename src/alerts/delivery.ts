import pLimit from 'p-limit';
import type { Logger } from 'pino';
import type { AlertRepository, Claimed, Settlement, SinkRow } from '../db/repositories/alerts.js';
import type { AlertEvent } from '../schemas/alert-events.js';
import type { OpenSink, SendResult } from './sinks.js';

export interface DeliveryOptions {
  repo: AlertRepository;
  send(sink: OpenSink, events: readonly AlertEvent[]): Promise<SendResult>;
  /** Opens a stored sink's sealed target and secret (throws when they cannot be opened). */
  open(row: SinkRow): OpenSink;
  log: Logger;
  /** Due deliveries are looked for this often (and at once after a local event). */
  pollMs: number;
  /** The first retry waits this long; each next one twice as long, up to an hour. */
  retryBaseMs: number;
  /** A delivery still failing this long after its event is given up. */
  giveUpMs: number;
  /** How long a claim holds: longer than a send can take. */
  leaseMs: number;
  /** Events per message: a burst is sent as few messages, each listing many events. */
  perMessage?: number;
  onSettled?(outcomes: readonly Settlement[]): void;
}

const MAX_BACKOFF_MS = 3600_000;
const CLAIM_BATCH = 200;

/** The wait before attempt `attempts + 1`: base, 2×base, 4×base, …, at most an hour. */
export function backoffMs(attempts: number, baseMs: number): number {
  return Math.min(MAX_BACKOFF_MS, baseMs * 2 ** Math.min(Math.max(attempts - 1, 0), 30));
}

/**
 * Sends the outbox's due deliveries: claims them (a lease, with SKIP LOCKED on PostgreSQL, so
 * each is sent by one instance), groups them by sink into as few messages as fit, sends, and
 * stores each outcome: delivered, retried later with exponential backoff, or given up a day
 * after its event. A process killed mid-send leaves the claim to lapse: another pass (here
 * after a restart, or another instance) sends it then. Delivery is at least once; each event
 * carries its id for receivers that must not act twice.
 */
export class AlertDelivery {
  #timer: NodeJS.Timeout | null = null;
  #wake: NodeJS.Timeout | null = null;
  #running: Promise<number> | null = null;
  #again = false;
  #closed = false;

  constructor(private readonly o: DeliveryOptions) {}

  start(): void {
    if (this.#timer || this.#closed) return;
    this.#timer = setInterval(() => void this.run(), this.o.pollMs);
    this.#timer.unref();
  }

  /** Something was recorded: look soon (a short wait groups what a burst records). */
  wake(delayMs = 200): void {
    if (this.#closed || this.#wake) return;
    this.#wake = setTimeout(() => {
      this.#wake = null;
      void this.run();
    }, delayMs);
    this.#wake.unref();
  }

  /** One pass (or joins the one running, then runs again); resolves with the deliveries settled. */
  run(): Promise<number> {
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    this.#running = (async () => {
      let settled = 0;
      try {
        do {
          this.#again = false;
          for (;;) {
            const n = await this.#pass();
            settled += n.claimed;
            if (n.claimed < CLAIM_BATCH || this.#closed) break;
          }
        } while (this.#again && !this.#closed);
      } catch (err) {
        this.o.log.error({ err }, 'alert delivery pass failed; the next pass retries');
      } finally {
        this.#running = null;
      }
      return settled;
    })();
    return this.#running;
  }

  async #pass(): Promise<{ claimed: number }> {
    const { repo } = this.o;
    const now = Date.now();
    const claimed = await repo.claimDue(new Date(now).toISOString(), new Date(now + this.o.leaseMs).toISOString(), CLAIM_BATCH);
    if (claimed.length === 0) return { claimed: 0 };
    const [events, sinks] = await Promise.all([repo.eventsByIds([...new Set(claimed.map((c) => c.event_id))]), repo.sinksByIds([...new Set(claimed.map((c) => c.sink_id))])]);
    const eventById = new Map(events.map((e) => [e.id, e]));
    const bySink = new Map<number, Claimed[]>();
    for (const c of claimed) {
      const list = bySink.get(c.sink_id) ?? [];
      list.push(c);
      bySink.set(c.sink_id, list);
    }
    const outcomes: Settlement[] = [];
    const limit = pLimit(4);
    const per = this.o.perMessage ?? 20;
    await Promise.all(
      [...bySink].map(([sinkId, list]) =>
        limit(async () => {
          const row = sinks.get(sinkId);
          if (!row) return;
          let sink: OpenSink;
          try {
            sink = this.o.open(row);
          } catch (err) {
            for (const c of list) outcomes.push({ id: c.id, state: 'failed', status: null, error: `the sink’s target cannot be opened: ${(err as Error).message}` });
            return;
          }
          for (let i = 0; i < list.length; i += per) {
            const part = list.slice(i, i + per).filter((c) => eventById.has(c.event_id));
            if (part.length === 0) continue;
            const r = await this.o.send(sink, part.map((c) => eventById.get(c.event_id)!));
            outcomes.push(...part.map((c) => this.#settlement(c, r, eventById.get(c.event_id)!, sink)));
          }
        }),
      ),
    );
    await repo.settle(outcomes);
    this.o.onSettled?.(outcomes);
    return { claimed: claimed.length };
  }

  #settlement(c: Claimed, r: SendResult, e: AlertEvent, sink: OpenSink): Settlement {
    if (r.ok) return { id: c.id, state: 'delivered', status: r.status };
    const error = r.error ?? 'failed';
    const now = Date.now();
    if (now - Date.parse(e.created_at) >= this.o.giveUpMs) {
      this.o.log.error({ sink: sink.name, event_id: e.id, attempts: c.attempts, error }, 'alert delivery given up');
      return { id: c.id, state: 'failed', status: r.status, error: `given up after ${c.attempts} attempts: ${error}` };
    }
    const wait = Math.max(backoffMs(c.attempts, this.o.retryBaseMs), (r.retryAfterS ?? 0) * 1000);
    this.o.log.warn({ sink: sink.name, event_id: e.id, attempts: c.attempts, retry_in_s: Math.round(wait / 1000), error }, 'alert delivery failed; will retry');
    return { id: c.id, state: 'pending', status: r.status, error, next_at: new Date(now + wait).toISOString() };
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    if (this.#wake) clearTimeout(this.#wake);
    this.#timer = null;
    this.#wake = null;
    await this.#running;
  }
}

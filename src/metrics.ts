import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Door } from './db/schema.js';
import type { Outbox } from './pool/outbox.js';
import type { KeyPool } from './pool/pool.js';

/** Why a request moved on from a key. */
export type FailoverReason = 'invalid' | 'exhausted' | 'rate_limited' | 'failure';

export interface MetricsOptions {
  pool: KeyPool;
  outbox: Outbox;
  /** Tokens labelled by name, at most this many; the rest are counted as `other`. */
  tokenLabels: number;
}

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 150];

/**
 * The gateway's Prometheus metrics, in a registry of its own (never prom-client's global one,
 * so that two apps in one process — the tests — do not share series). Counting is a few
 * increments per request; gauges of the pool and the request log are read when scraped.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly #requests: Counter<'endpoint' | 'door' | 'status'>;
  readonly #credits: Counter<'endpoint' | 'door'>;
  readonly #tokenRequests: Counter<'token'>;
  readonly #tokenCredits: Counter<'token'>;
  readonly #upstream: Histogram<'endpoint'>;
  readonly #added: Histogram<'endpoint'>;
  readonly #syncLag: Histogram;
  readonly #failovers: Counter<'reason'>;
  readonly #refreshRuns: Counter<'result'>;
  readonly #refreshSeconds: Histogram;
  readonly #refreshKeyFailures: Counter;
  readonly #flushSeconds: Histogram;
  readonly #flushFailures: Counter;
  readonly #alertDeliveries: Counter<'result'>;
  readonly #cacheRequests: Counter<'endpoint' | 'result'>;
  readonly #cacheSaved: Counter<'endpoint'>;
  readonly #tokenNames = new Map<string, string>();
  readonly #tokenLabels: number;

  constructor(o: MetricsOptions) {
    const registers = [this.registry];
    this.#tokenLabels = o.tokenLabels;
    collectDefaultMetrics({ register: this.registry });
    this.#requests = new Counter({ name: 'tavily_pool_requests_total', help: 'Gateway requests answered, by endpoint, door (rest, mcp) and HTTP status', labelNames: ['endpoint', 'door', 'status'], registers });
    this.#credits = new Counter({ name: 'tavily_pool_credits_spent_total', help: 'Tavily credits spent through the gateway', labelNames: ['endpoint', 'door'], registers });
    this.#tokenRequests = new Counter({ name: 'tavily_pool_token_requests_total', help: 'Requests by client token (by name; tokens past METRICS_TOKEN_LABELS are "other")', labelNames: ['token'], registers });
    this.#tokenCredits = new Counter({ name: 'tavily_pool_token_credits_total', help: 'Credits by client token (by name; tokens past METRICS_TOKEN_LABELS are "other")', labelNames: ['token'], registers });
    this.#upstream = new Histogram({ name: 'tavily_pool_upstream_seconds', help: 'Time Tavily took to answer a served request', labelNames: ['endpoint'], buckets: LATENCY_BUCKETS, registers });
    this.#added = new Histogram({
      name: 'tavily_pool_gateway_added_seconds',
      help: 'Time the gateway adds to an answered request beyond waiting for Tavily (choosing keys, failover, parsing, accounting)',
      labelNames: ['endpoint'],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
      registers,
    });
    this.#syncLag = new Histogram({
      name: 'tavily_pool_sync_lag_seconds',
      help: 'PostgreSQL: time from a change published on another instance to its notice here',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.#failovers = new Counter({ name: 'tavily_pool_failovers_total', help: 'Times a request moved on from a key, by reason', labelNames: ['reason'], registers });
    this.#refreshRuns = new Counter({ name: 'tavily_pool_refresh_runs_total', help: 'Quota refreshes, by result (ok, failed: the write failed)', labelNames: ['result'], registers });
    this.#refreshSeconds = new Histogram({ name: 'tavily_pool_refresh_seconds', help: 'Duration of a quota refresh', buckets: [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900], registers });
    this.#refreshKeyFailures = new Counter({ name: 'tavily_pool_refresh_key_failures_total', help: 'Keys whose /usage check failed in a refresh', registers });
    this.#flushSeconds = new Histogram({ name: 'tavily_pool_request_log_flush_seconds', help: 'Duration of a request-log flush (log rows, spend, key health)', buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5], registers });
    this.#flushFailures = new Counter({ name: 'tavily_pool_request_log_flush_failures_total', help: 'Request-log flushes that failed (their rows are kept and retried)', registers });
    this.#cacheRequests = new Counter({ name: 'tavily_pool_cache_requests_total', help: 'Requests of tokens with an answer cache, by what the cache did: hit (a stored answer), joined (an identical request in flight), miss (Tavily called), bypass (the client asked for Tavily)', labelNames: ['endpoint', 'result'], registers });
    this.#cacheSaved = new Counter({ name: 'tavily_pool_cache_saved_credits_total', help: 'Credits not spent because an answer came from the cache or an identical request in flight', labelNames: ['endpoint'], registers });
    this.#alertDeliveries = new Counter({ name: 'tavily_pool_alert_deliveries_total', help: 'Alert deliveries attempted, by result (delivered, retry, failed: given up)', labelNames: ['result'], registers });
    const pool = o.pool;
    const wb = o.outbox;
    new Gauge({
      name: 'tavily_pool_keys',
      help: 'Keys in the pool, by state (available, resting, exhausted, invalid, disabled)',
      labelNames: ['state'],
      registers,
      collect() {
        const c = pool.counts();
        this.set({ state: 'available' }, c.available);
        this.set({ state: 'resting' }, c.cooling);
        this.set({ state: 'exhausted' }, c.exhausted);
        this.set({ state: 'invalid' }, c.invalid);
        this.set({ state: 'disabled' }, c.disabled);
      },
    });
    new Gauge({
      name: 'tavily_pool_credits_remaining',
      help: 'Credits the pool can still spend, each account counted once (keys not refreshed yet count nothing)',
      registers,
      collect() {
        this.set(pool.creditsRemaining());
      },
    });
    new Gauge({
      name: 'tavily_pool_request_log_pending_rows',
      help: 'Request-log rows waiting to be written',
      registers,
      collect() {
        this.set(wb.pendingRows);
      },
    });
    new Gauge({
      name: 'tavily_pool_request_log_dropped_rows',
      help: 'Request-log rows dropped since start (refused by the database one by one, or over the pending cap)',
      registers,
      collect() {
        this.set(wb.stats.dropped);
      },
    });
  }

  /** A request answered (or refused) by the gateway. */
  request(endpoint: string, door: Door, status: number, credits: number, token: string | null): void {
    this.#requests.inc({ endpoint, door, status: String(status) });
    if (credits > 0) this.#credits.inc({ endpoint, door }, credits);
    if (token !== null) {
      const label = this.#tokenLabel(token);
      this.#tokenRequests.inc({ token: label });
      if (credits > 0) this.#tokenCredits.inc({ token: label }, credits);
    }
  }

  /** What the answer cache did for a request, and the credits it saved. */
  cache(endpoint: string, result: 'hit' | 'joined' | 'miss' | 'bypass', saved: number): void {
    this.#cacheRequests.inc({ endpoint, result });
    if (saved > 0) this.#cacheSaved.inc({ endpoint }, saved);
  }

  upstream(endpoint: string, seconds: number): void {
    this.#upstream.observe({ endpoint }, seconds);
  }

  added(endpoint: string, seconds: number): void {
    this.#added.observe({ endpoint }, seconds);
  }

  /** A notice from another instance took this long (clock skew can make it negative: counted as 0). */
  syncLag(ms: number): void {
    this.#syncLag.observe(Math.max(0, ms) / 1000);
  }

  failover(reason: FailoverReason): void {
    this.#failovers.inc({ reason });
  }

  refresh(seconds: number, keyFailures: number, ok: boolean): void {
    this.#refreshRuns.inc({ result: ok ? 'ok' : 'failed' });
    this.#refreshSeconds.observe(seconds);
    if (keyFailures > 0) this.#refreshKeyFailures.inc(keyFailures);
  }

  flush(seconds: number, ok: boolean): void {
    if (ok) this.#flushSeconds.observe(seconds);
    else this.#flushFailures.inc();
  }

  alertDelivery(result: 'delivered' | 'retry' | 'failed', n = 1): void {
    this.#alertDeliveries.inc({ result }, n);
  }

  /** The token's label: its name, for the first METRICS_TOKEN_LABELS names seen; `other` after. */
  #tokenLabel(name: string): string {
    const known = this.#tokenNames.get(name);
    if (known !== undefined) return known;
    const label = this.#tokenNames.size < this.#tokenLabels ? name : 'other';
    if (this.#tokenNames.size < this.#tokenLabels * 4) this.#tokenNames.set(name, label);
    return label;
  }
}

/**
 * The answer cache and in-flight dedup. Agents running side by side send the same query within
 * seconds, and an MCP client retries a call it gave up on: the second asks Tavily for what the
 * first already paid for. With a cache TTL (a token's `cache_ttl_s`, or MCP_CACHE_TTL_S), an
 * identical request in flight waits for the first one's answer, and one within the TTL gets the
 * stored answer; both cost nothing and are logged as `joined` / `hit` with the credits saved.
 *
 * Identical: the same endpoint and the same canonical body (fields.ts), whatever the order of
 * its fields, `include_usage` aside (it only shows the figure). Nothing else a request carries
 * changes Tavily's answer: the token's scopes only refuse, and no key or account is chosen by
 * the client. Only 2xx JSON answers of endpoints that answer alike (search, extract, crawl,
 * map) are kept; research, failures and answers over CACHE_MAX_ENTRY_BYTES never are. Memory
 * is bounded by CACHE_MAX_BYTES (least recently used first out); each instance has its own.
 */

type Json = Record<string, unknown>;

/** An answer to reuse: its JSON text without `usage`, and what Tavily charged for it. */
export interface SharedAnswer {
  readonly text: string;
  readonly credits: number;
  readonly requestId: string | null;
  readonly storedAt: number;
}

/** A stored answer. */
export interface CachedAnswer extends SharedAnswer {
  /** What it counts against CACHE_MAX_BYTES: its text and key, two bytes a character (JS strings at worst), and its bookkeeping. */
  readonly bytes: number;
}

export interface CacheOptions {
  maxBytes: number;
  maxEntryBytes: number;
  /** Nothing older is served, whatever a token's TTL says. */
  maxTtlMs: number;
}

/**
 * The header of both doors: `X-Tavily-Pool-Cache: bypass` on a request asks Tavily (the answer
 * is then stored); on an answer it says what the cache did (hit, joined, miss, bypass).
 */
export const CACHE_HEADER = 'x-tavily-pool-cache';

/** `bypass` when the request's cache header asks for it. */
export function bypassAsked(header: string | string[] | undefined): 'bypass' | undefined {
  return String(header ?? '').trim().toLowerCase() === 'bypass' ? 'bypass' : undefined;
}

/** Bookkeeping per entry: the Map's slot, the record, the numbers. */
const ENTRY_OVERHEAD = 160;

/** JSON with every object's keys sorted: the same request body gives the same text. */
export function stableJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  const keys = Object.keys(v as Json).sort();
  let out = '{';
  for (const k of keys) {
    const x = (v as Json)[k];
    if (x === undefined) continue;
    if (out.length > 1) out += ',';
    out += `${JSON.stringify(k)}:${stableJson(x)}`;
  }
  return `${out}}`;
}

/** The cache key of a request: its endpoint and canonical body, `include_usage` left out. */
export function cacheKey(endpoint: string, body: Json): string {
  const { include_usage: _u, ...rest } = body;
  return `${endpoint} ${stableJson(rest)}`;
}

/** The stored text as the client asked for it: with `"usage": {"credits": 0}` added when it asked for usage. */
export function withUsage(text: string, includeUsage: boolean): string {
  if (!includeUsage) return text;
  const close = text.lastIndexOf('}');
  if (close < 0) return text;
  const empty = /^\{\s*$/.test(text.slice(0, close));
  return `${text.slice(0, close)}${empty ? '' : ','}"usage":{"credits":0}${text.slice(close)}`;
}

/** An entry and when it was last moved to the end of the order. */
interface Slot {
  answer: CachedAnswer;
  seq: number;
}

export class AnswerCache {
  /**
   * Least recently used first. A hit moves its entry to the end only when it has fallen into the
   * older half: moving on every hit (a delete and an insert) makes V8 rebuild a large Map's
   * table again and again (~15 µs a hit at 5,000 entries, against ~0.5 µs).
   */
  readonly #entries = new Map<string, Slot>();
  #seq = 0;
  #bytes = 0;
  /** Requests in flight that others may join: key → the answer, or null when it failed. */
  readonly #inflight = new Map<string, Promise<SharedAnswer | null>>();

  constructor(readonly o: CacheOptions) {}

  get bytes(): number {
    return this.#bytes;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The answer stored under `key` no longer ago than `ttlMs` (nor CACHE_MAX_TTL_S), or null. */
  get(key: string, ttlMs: number, now = Date.now()): CachedAnswer | null {
    const slot = this.#entries.get(key);
    if (!slot) return null;
    const e = slot.answer;
    const age = now - e.storedAt;
    if (age > this.o.maxTtlMs) {
      this.#drop(key, slot);
      return null;
    }
    if (age > ttlMs) return null;
    if (this.#seq - slot.seq > this.#entries.size >> 1) {
      this.#entries.delete(key);
      this.#entries.set(key, slot);
      slot.seq = ++this.#seq;
    }
    return e;
  }

  /** Keeps an answer, unless it is larger than CACHE_MAX_ENTRY_BYTES; the oldest-used go to make room. False when not kept. */
  set(key: string, answer: SharedAnswer): boolean {
    const bytes = (answer.text.length + key.length + (answer.requestId?.length ?? 0)) * 2 + ENTRY_OVERHEAD;
    if (bytes > this.o.maxEntryBytes || bytes > this.o.maxBytes) return false;
    const old = this.#entries.get(key);
    if (old) this.#drop(key, old);
    this.#entries.set(key, { answer: { ...answer, bytes }, seq: ++this.#seq });
    this.#bytes += bytes;
    while (this.#bytes > this.o.maxBytes) {
      const [k, slot] = this.#entries.entries().next().value!;
      this.#drop(k, slot);
    }
    return true;
  }

  #drop(key: string, slot: Slot): void {
    this.#entries.delete(key);
    this.#bytes -= slot.answer.bytes;
  }

  /** The answer of an identical request in flight, to wait for; undefined when there is none. */
  inflight(key: string): Promise<SharedAnswer | null> | undefined {
    return this.#inflight.get(key);
  }

  /**
   * This request calls Tavily for `key`: identical ones wait for it until `settle` (with the
   * answer, or null when there is none to share).
   */
  lead(key: string): (answer: SharedAnswer | null) => void {
    let settle!: (answer: SharedAnswer | null) => void;
    const p = new Promise<SharedAnswer | null>((resolve) => (settle = resolve));
    this.#inflight.set(key, p);
    let done = false;
    return (answer) => {
      if (done) return;
      done = true;
      if (this.#inflight.get(key) === p) this.#inflight.delete(key);
      settle(answer);
    };
  }
}

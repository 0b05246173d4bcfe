import type { KeyHealth } from '../db/schema.js';

import type { KeyStrategy } from '../config.js';

/**
 * A Tavily account the admin declared: its keys share its credits. `remaining` is what the
 * account can still spend (plan room plus pay-as-you-go room, counted once); null while unknown.
 */
export interface PoolAccount {
  readonly id: number;
  remaining: number | null;
  readonly keys: Set<PoolKey>;
}

/** A key as the gateway holds it in memory. */
export interface PoolKey {
  readonly id: number;
  readonly plain: string;
  readonly masked: string;
  health: KeyHealth;
  enabled: boolean;
  /**
   * Credits left by the key's own figures (its limit, and its account's room when it was
   * read); null while unknown (never refreshed, or no limit applies). Its account's shared
   * room caps it further: see `effectiveRemaining`.
   */
  remaining: number | null;
  /** The account whose credits the key shares; null: the key is its own account. */
  account: PoolAccount | null;
  /** Epoch ms until which the key rests (after a 429, or after failures in a row). */
  coolUntil: number;
  /** Upstream failures in a row (5xx, timeouts, broken answers): the key rests longer after each. */
  failStreak: number;
  lastUsed: number;
  /** Position in the selector's structure; -1 while not selectable. */
  slot: number;
  bucket: number;
}

/** What the pool loads from the database. */
export interface PoolEntry {
  id: number;
  plain: string;
  masked: string;
  health: KeyHealth;
  enabled: boolean;
  remaining: number | null;
  lastUsed: number;
  /** Epoch ms until which the key rests after a 429 (0: not resting). */
  coolUntil: number;
  /** The key's account, and what the account can still spend (null: unknown). */
  accountId: number | null;
  accountRemaining: number | null;
}

/** The lesser of two credit figures, either of which may be unknown (null); null when both are. */
export function leastKnown(a: number | null, b: number | null): number | null {
  if (a === null) return b;
  return b === null ? a : Math.min(a, b);
}

/** What a key can spend now: the least of its own room and its account's; null when neither is known. */
export function effectiveRemaining(k: { remaining: number | null; account: { remaining: number | null } | null }): number | null {
  return leastKnown(k.remaining, k.account?.remaining ?? null);
}

/** Keeps the selectable keys; every operation is O(1). */
interface Selector {
  add(k: PoolKey): void;
  remove(k: PoolKey): void;
  pick(exclude: ReadonlySet<number>): PoolKey | null;
  /** The key's remaining credits changed. */
  moved(k: PoolKey): void;
  /** The key was just used. */
  used(k: PoolKey): void;
}

/** A never-refreshed key is ranked as a free key with its month ahead of it. */
const UNKNOWN_RANK = 1000;
const BUCKET_RATIO = Math.log(1.1);
const BUCKETS = 256;

/**
 * Most remaining first: keys sit in geometric buckets 10% wide; a pick is random within the
 * highest bucket, so near-ties share the load instead of one key taking every request.
 */
class MostRemaining implements Selector {
  readonly #buckets: PoolKey[][] = Array.from({ length: BUCKETS }, () => []);
  #top = -1;

  static bucketOf(k: PoolKey): number {
    const r = effectiveRemaining(k) ?? UNKNOWN_RANK;
    return Math.min(BUCKETS - 1, Math.max(0, Math.floor(Math.log1p(Math.max(0, r)) / BUCKET_RATIO)));
  }

  add(k: PoolKey): void {
    const b = MostRemaining.bucketOf(k);
    const list = this.#buckets[b]!;
    k.bucket = b;
    k.slot = list.length;
    list.push(k);
    if (b > this.#top) this.#top = b;
  }

  remove(k: PoolKey): void {
    const list = this.#buckets[k.bucket]!;
    const last = list.pop()!;
    if (last !== k) {
      list[k.slot] = last;
      last.slot = k.slot;
    }
    k.slot = -1;
    while (this.#top >= 0 && this.#buckets[this.#top]!.length === 0) this.#top--;
  }

  moved(k: PoolKey): void {
    if (MostRemaining.bucketOf(k) === k.bucket) return;
    this.remove(k);
    this.add(k);
  }

  used(): void {}

  pick(exclude: ReadonlySet<number>): PoolKey | null {
    for (let b = this.#top; b >= 0; b--) {
      const list = this.#buckets[b]!;
      if (list.length === 0) continue;
      const start = Math.floor(Math.random() * list.length);
      // At most MAX_ATTEMPTS − 1 keys are excluded: this loop ends after a few steps.
      for (let i = 0; i < list.length; i++) {
        const k = list[(start + i) % list.length]!;
        if (!exclude.has(k.id)) return k;
      }
    }
    return null;
  }
}

/** Each key in turn. */
class RoundRobin implements Selector {
  readonly #ring: PoolKey[] = [];
  #cursor = 0;

  add(k: PoolKey): void {
    k.slot = this.#ring.length;
    this.#ring.push(k);
  }

  remove(k: PoolKey): void {
    const last = this.#ring.pop()!;
    if (last !== k) {
      this.#ring[k.slot] = last;
      last.slot = k.slot;
    }
    k.slot = -1;
  }

  moved(): void {}
  used(): void {}

  pick(exclude: ReadonlySet<number>): PoolKey | null {
    const n = this.#ring.length;
    for (let i = 0; i < n; i++) {
      const k = this.#ring[this.#cursor++ % n]!;
      if (!exclude.has(k.id)) return k;
    }
    return null;
  }
}

/** The key unused the longest: a Map keeps insertion order, and use moves a key to the end. */
class LeastRecentlyUsed implements Selector {
  readonly #order = new Map<number, PoolKey>();

  add(k: PoolKey): void {
    k.slot = 0;
    this.#order.set(k.id, k);
  }

  remove(k: PoolKey): void {
    k.slot = -1;
    this.#order.delete(k.id);
  }

  moved(): void {}

  used(k: PoolKey): void {
    if (k.slot === -1) return;
    this.#order.delete(k.id);
    this.#order.set(k.id, k);
  }

  pick(exclude: ReadonlySet<number>): PoolKey | null {
    for (const k of this.#order.values()) if (!exclude.has(k.id)) return k;
    return null;
  }
}

function makeSelector(strategy: KeyStrategy): Selector {
  switch (strategy) {
    case 'most-remaining':
      return new MostRemaining();
    case 'round-robin':
      return new RoundRobin();
    case 'least-recently-used':
      return new LeastRecentlyUsed();
  }
}

export interface PoolCounts {
  total: number;
  available: number;
  disabled: number;
  invalid: number;
  exhausted: number;
  cooling: number;
}

/**
 * The keys the gateway can use, in memory: selection never queries the database. Health
 * changes made here are persisted by the write-behind buffer, not on the request's path.
 */
export class KeyPool {
  readonly #keys = new Map<number, PoolKey>();
  readonly #accounts = new Map<number, PoolAccount>();
  #selector: Selector;
  readonly #timers = new Map<number, NodeJS.Timeout>();

  constructor(readonly strategy: KeyStrategy) {
    this.#selector = makeSelector(strategy);
  }

  /** Replaces the pool's keys; cooldowns of keys still present carry over. */
  load(entries: readonly PoolEntry[], now = Date.now()): void {
    const previous = new Map(this.#keys);
    this.#keys.clear();
    this.#accounts.clear();
    this.#selector = makeSelector(this.strategy);
    // The timers point at the previous objects: re-armed below for the new ones.
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
    for (const e of entries) {
      const k = this.#fromEntry(e, previous.get(e.id));
      this.#keys.set(k.id, k);
      this.#place(k, now);
      this.#arm(k, now);
    }
  }

  /** Adds or replaces these keys and drops `gone`, leaving the rest of the pool as it is. */
  update(entries: readonly PoolEntry[], gone: readonly number[] = [], now = Date.now()): void {
    for (const id of gone) {
      const k = this.#keys.get(id);
      if (!k) continue;
      this.#keys.delete(id);
      this.#leaveAccount(k);
      this.#place(k, now);
      clearTimeout(this.#timers.get(id));
      this.#timers.delete(id);
    }
    for (const e of entries) {
      const old = this.#keys.get(e.id);
      if (old) {
        this.#keys.delete(e.id);
        this.#leaveAccount(old);
        this.#place(old, now);
      }
      const k = this.#fromEntry(e, old);
      this.#keys.set(k.id, k);
      this.#place(k, now);
      this.#arm(k, now);
    }
  }

  /**
   * A key from the database; the later cooldown and last use of the two views win. The key
   * joins its account, whose room is taken as read with it (the other keys of the account are
   * re-ranked when it changed).
   */
  #fromEntry(e: PoolEntry, old: PoolKey | undefined): PoolKey {
    let account: PoolAccount | null = null;
    if (e.accountId !== null) {
      account = this.#accounts.get(e.accountId) ?? null;
      if (!account) {
        account = { id: e.accountId, remaining: e.accountRemaining, keys: new Set() };
        this.#accounts.set(account.id, account);
      } else if (account.remaining !== e.accountRemaining) {
        account.remaining = e.accountRemaining;
        for (const m of account.keys) this.#place(m);
      }
    }
    // Written out rather than spread: one object shape for every key, built fast in bulk.
    const k: PoolKey = {
      id: e.id,
      plain: e.plain,
      masked: e.masked,
      health: e.health,
      enabled: e.enabled,
      remaining: e.remaining,
      account,
      coolUntil: old && old.coolUntil > e.coolUntil ? old.coolUntil : e.coolUntil,
      failStreak: old?.failStreak ?? 0,
      lastUsed: old && old.lastUsed > e.lastUsed ? old.lastUsed : e.lastUsed,
      slot: -1,
      bucket: 0,
    };
    account?.keys.add(k);
    return k;
  }

  #leaveAccount(k: PoolKey): void {
    const a = k.account;
    if (!a) return;
    a.keys.delete(k);
    if (a.keys.size === 0 && this.#accounts.get(a.id) === a) this.#accounts.delete(a.id);
  }

  account(id: number): PoolAccount | undefined {
    return this.#accounts.get(id);
  }

  get(id: number): PoolKey | undefined {
    return this.#keys.get(id);
  }

  /** The ids of every key in the pool. */
  ids(): number[] {
    return [...this.#keys.keys()];
  }

  get size(): number {
    return this.#keys.size;
  }

  /** The next key to use, skipping `exclude` (keys this request already tried). */
  pick(exclude: ReadonlySet<number> = EMPTY): PoolKey | null {
    const k = this.#selector.pick(exclude);
    if (k) {
      k.lastUsed = Date.now();
      this.#selector.used(k);
    }
    return k;
  }

  /**
   * When no key can be chosen: of the keys resting only because they failed (not because
   * Tavily asked for a rest), the one whose rest ends first. A pool whose every key failed a
   * moment ago (Tavily itself down) tries again rather than refuse until the rests end. Scans
   * the keys: it runs only when the pool has nothing else.
   */
  pickResting(exclude: ReadonlySet<number> = EMPTY, now = Date.now()): PoolKey | null {
    let best: PoolKey | null = null;
    for (const k of this.#keys.values()) {
      if (k.failStreak === 0 || exclude.has(k.id) || !this.#selectable(k, Math.max(now, k.coolUntil))) continue;
      if (!best || k.coolUntil < best.coolUntil) best = k;
    }
    if (best) best.lastUsed = now;
    return best;
  }

  /**
   * Spends credits from the key's figure and from its account's room, which every key of the
   * account shares (in memory; the write-behind buffer persists both).
   */
  deduct(k: PoolKey, credits: number): void {
    if (credits <= 0) return;
    if (k.remaining !== null) {
      k.remaining = Math.max(0, k.remaining - credits);
      if (k.remaining <= 0) k.health = 'exhausted';
    }
    const a = k.account;
    if (a && a.remaining !== null) {
      a.remaining = Math.max(0, a.remaining - credits);
      for (const m of a.keys) if (m !== k) this.#place(m);
    }
    this.#place(k);
  }

  /** What an account can still spend, as a refresh read it or another instance stored it. */
  setAccountRemaining(id: number, remaining: number | null): void {
    const a = this.#accounts.get(id);
    if (!a || a.remaining === remaining) return;
    a.remaining = remaining;
    for (const m of a.keys) this.#place(m);
  }

  /** New figures for a key from a refresh (a null `remaining` keeps the one it has). */
  refreshed(id: number, health: KeyHealth, remaining?: number | null): void {
    const k = this.#keys.get(id);
    if (!k) return;
    k.health = health;
    if (remaining !== undefined) k.remaining = remaining;
    this.#place(k);
  }

  setHealth(k: PoolKey, health: KeyHealth): void {
    k.health = health;
    this.#place(k);
  }

  /** Puts the key in or out of the selectable set, or re-ranks it, as its state now says. */
  #place(k: PoolKey, now = Date.now()): void {
    const was = k.slot !== -1;
    const should = this.#keys.get(k.id) === k && this.#selectable(k, now);
    if (was && !should) this.#selector.remove(k);
    else if (!was && should) this.#selector.add(k);
    else if (was) this.#selector.moved(k);
  }

  /** Rests the key after a 429 until Retry-After has passed. */
  coolDown(k: PoolKey, seconds: number, now = Date.now()): void {
    this.coolUntil(k, now + seconds * 1000, now);
  }

  /** Rests the key until `until` (epoch ms), or longer if it already rests longer. */
  coolUntil(k: PoolKey, until: number, now = Date.now()): void {
    k.coolUntil = Math.max(k.coolUntil, until);
    this.#place(k, now);
    this.#arm(k, now);
  }

  /** A resting key goes back into the selectable set when its cooldown ends. */
  #arm(k: PoolKey, now: number): void {
    if (k.coolUntil <= now) return;
    clearTimeout(this.#timers.get(k.id));
    const t = setTimeout(() => {
      this.#timers.delete(k.id);
      const at = Date.now();
      this.#place(k, at);
      // A timer may fire a millisecond before Date.now() reaches coolUntil: wait the rest.
      this.#arm(k, at);
    }, k.coolUntil - now);
    t.unref();
    this.#timers.set(k.id, t);
  }

  /** What the usable keys can still spend, each account counted once (unknown figures count nothing). */
  creditsRemaining(): number {
    let total = 0;
    const byAccount = new Map<PoolAccount, number>();
    for (const k of this.#keys.values()) {
      if (!k.enabled || k.health === 'invalid') continue;
      if (k.account) byAccount.set(k.account, (byAccount.get(k.account) ?? 0) + (k.remaining ?? 0));
      else total += k.remaining ?? 0;
    }
    for (const [a, own] of byAccount) total += leastKnown(a.remaining, own)!;
    return total;
  }

  counts(now = Date.now()): PoolCounts {
    const c: PoolCounts = { total: this.#keys.size, available: 0, disabled: 0, invalid: 0, exhausted: 0, cooling: 0 };
    for (const k of this.#keys.values()) {
      if (!k.enabled) c.disabled++;
      else if (k.health === 'invalid') c.invalid++;
      else if (k.health === 'exhausted' || (effectiveRemaining(k) ?? 1) <= 0) c.exhausted++;
      else if (k.coolUntil > now) c.cooling++;
      else c.available++;
    }
    return c;
  }

  close(): void {
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
  }

  #selectable(k: PoolKey, now: number): boolean {
    return k.enabled && k.health === 'active' && (effectiveRemaining(k) ?? 1) > 0 && k.coolUntil <= now;
  }
}

const EMPTY: ReadonlySet<number> = new Set();

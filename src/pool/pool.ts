import type { KeyHealth } from '../db/schema.js';

import type { KeyStrategy } from '../config.js';
import { nextReset } from '../cycles.js';

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
  /** When the billing cycle began, as the pool saw it (its account's, or its own); null: not seen. */
  cycleStartedAt: number | null;
  /** Epoch ms when its credits lapse (the next reset), and what that is based on. */
  lapsesAt: number;
  renewalBasis: 'cycle' | 'calendar';
  /** expiring-first: the UTC day its credits lapse, the group it is ranked in. */
  horizon: number;
  /** Requests a minute Tavily takes from this key (development keys 100, production keys 1,000). */
  rpm: number;
  /** Requests sent with it: this minute (`rateMinute`, epoch minutes) and the one before. */
  rateMinute: number;
  rateNow: number;
  ratePrev: number;
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
  /** Epoch ms the current billing cycle began (the account's when it has one); null or absent: not seen. */
  cycleStartedAt?: number | null;
}

/** Tavily's per-key rate: development keys 100 requests a minute, production keys 1,000. */
export function keyRpm(plain: string): number {
  return plain.startsWith('tvly-dev-') ? 100 : 1000;
}

/** expiring-first sends a key at most this share of its per-key rate, leaving room for retries and other instances. */
const RATE_SHARE = 0.9;
const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;

/**
 * Requests sent with the key in the last minute, as a sliding window: this minute's count
 * plus the previous minute's, weighted by the part of it still inside the window.
 */
export function recentRate(k: PoolKey, now: number): number {
  const minute = Math.floor(now / MINUTE_MS);
  if (minute > k.rateMinute + 1) return 0;
  const prev = minute === k.rateMinute ? k.ratePrev : k.rateNow;
  const cur = minute === k.rateMinute ? k.rateNow : 0;
  return cur + prev * (1 - (now % MINUTE_MS) / MINUTE_MS);
}

function countUse(k: PoolKey, now: number): void {
  const minute = Math.floor(now / MINUTE_MS);
  if (minute !== k.rateMinute) {
    k.ratePrev = minute === k.rateMinute + 1 ? k.rateNow : 0;
    k.rateNow = 0;
    k.rateMinute = minute;
  }
  k.rateNow++;
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

/** Keeps the selectable keys; every operation is O(1) (expiring-first: O(days with keys) to pick). */
interface Selector {
  add(k: PoolKey): void;
  remove(k: PoolKey): void;
  pick(exclude: ReadonlySet<number>, now: number): PoolKey | null;
  /** The key's remaining credits changed. */
  moved(k: PoolKey): void;
  /** The key was just used. */
  used(k: PoolKey, now: number): void;
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

  constructor(private readonly random: () => number = Math.random) {}

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

  get empty(): boolean {
    return this.#top < 0;
  }

  /** Every key it holds (to move them elsewhere). */
  all(): PoolKey[] {
    return this.#buckets.flat();
  }

  /** The fullest key not excluded (and `accept`ed, when given), at random among near-ties. */
  pick(exclude: ReadonlySet<number>, _now?: number, accept?: (k: PoolKey) => boolean): PoolKey | null {
    for (let b = this.#top; b >= 0; b--) {
      const list = this.#buckets[b]!;
      if (list.length === 0) continue;
      const start = Math.floor(this.random() * list.length);
      // At most MAX_ATTEMPTS − 1 keys are excluded: this loop ends after a few steps (with
      // `accept`, after the keys at their rate, which are few unless the pool is saturated).
      for (let i = 0; i < list.length; i++) {
        const k = list[(start + i) % list.length]!;
        if (!exclude.has(k.id) && (!accept || accept(k))) return k;
      }
    }
    return null;
  }
}

/**
 * The credits that lapse first are spent first: keys are grouped by the UTC day their cycle
 * resets (their account's), earliest first, and ranked within a day by what they have left, as
 * most-remaining ranks them. A key that has sent 90% of its per-key rate in the last minute is
 * passed over for the next one, so one account is not driven into 429s; when every key is that
 * busy, the earliest is taken anyway (Tavily decides).
 */
class ExpiringFirst implements Selector {
  /** Day → its keys, ranked by what they have left. */
  readonly #days = new Map<number, MostRemaining>();
  /** The days with keys, ascending. */
  #order: number[] = [];
  /** Day → the earliest reset among its keys (lower than that after removals: then found again). */
  readonly #soonest = new Map<number, number>();

  constructor(
    private readonly relapse: (k: PoolKey, now: number) => void,
    private readonly random: () => number,
  ) {}

  add(k: PoolKey): void {
    const day = Math.floor(k.lapsesAt / DAY_MS);
    k.horizon = day;
    let group = this.#days.get(day);
    if (!group) {
      group = new MostRemaining(this.random);
      this.#days.set(day, group);
      const at = this.#order.findIndex((d) => d > day);
      if (at === -1) this.#order.push(day);
      else this.#order.splice(at, 0, day);
    }
    group.add(k);
    this.#soonest.set(day, Math.min(this.#soonest.get(day) ?? Infinity, k.lapsesAt));
  }

  remove(k: PoolKey): void {
    const group = this.#days.get(k.horizon)!;
    group.remove(k);
    if (group.empty) {
      this.#days.delete(k.horizon);
      this.#soonest.delete(k.horizon);
      this.#order.splice(this.#order.indexOf(k.horizon), 1);
    }
  }

  moved(k: PoolKey): void {
    this.#days.get(k.horizon)!.moved(k);
  }

  used(k: PoolKey, now: number): void {
    countUse(k, now);
  }

  pick(exclude: ReadonlySet<number>, now: number): PoolKey | null {
    // Keys whose reset has passed were renewed: ranked again by the next one.
    while (this.#order.length > 0) {
      const day = this.#order[0]!;
      if (this.#soonest.get(day)! > now) break;
      const keys = this.#days.get(day)!.all();
      const due = keys.filter((k) => k.lapsesAt <= now);
      for (const k of due) {
        this.remove(k);
        this.relapse(k, now); // Always after now: never due again.
        this.add(k);
      }
      const left = this.#days.get(day);
      if (left) this.#soonest.set(day, Math.min(...left.all().map((k) => k.lapsesAt)));
    }
    const calm = (k: PoolKey) => recentRate(k, now) < k.rpm * RATE_SHARE;
    for (const day of this.#order) {
      const k = this.#days.get(day)!.pick(exclude, now, calm);
      if (k) return k;
    }
    for (const day of this.#order) {
      const k = this.#days.get(day)!.pick(exclude, now);
      if (k) return k;
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

function makeSelector(strategy: KeyStrategy, relapse: (k: PoolKey, now: number) => void, random: () => number): Selector {
  switch (strategy) {
    case 'expiring-first':
      return new ExpiringFirst(relapse, random);
    case 'most-remaining':
      return new MostRemaining(random);
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

  readonly #clock: () => number;
  readonly #random: () => number;
  readonly #relapse = (k: PoolKey, now: number): void => {
    const r = nextReset(k.cycleStartedAt, now);
    k.lapsesAt = r.at;
    k.renewalBasis = r.basis;
  };

  /**
   * `clock`: the time the pool reads; `random`: its coin for near-ties. The waste simulation
   * gives both, to run 90 days in seconds, the same every time.
   */
  constructor(
    readonly strategy: KeyStrategy,
    opts: { clock?: () => number; random?: () => number } = {},
  ) {
    this.#clock = opts.clock ?? Date.now;
    this.#random = opts.random ?? Math.random;
    this.#selector = makeSelector(strategy, this.#relapse, this.#random);
  }

  /** Replaces the pool's keys; cooldowns of keys still present carry over. */
  load(entries: readonly PoolEntry[], now = this.#clock()): void {
    const previous = new Map(this.#keys);
    this.#keys.clear();
    this.#accounts.clear();
    this.#selector = makeSelector(this.strategy, this.#relapse, this.#random);
    // The timers point at the previous objects: re-armed below for the new ones.
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
    for (const e of entries) {
      const k = this.#fromEntry(e, previous.get(e.id), now);
      this.#keys.set(k.id, k);
      this.#place(k, now);
      this.#arm(k, now);
    }
  }

  /** Adds or replaces these keys and drops `gone`, leaving the rest of the pool as it is. */
  update(entries: readonly PoolEntry[], gone: readonly number[] = [], now = this.#clock()): void {
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
      const k = this.#fromEntry(e, old, now);
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
  #fromEntry(e: PoolEntry, old: PoolKey | undefined, now: number): PoolKey {
    let account: PoolAccount | null = null;
    if (e.accountId !== null) {
      account = this.#accounts.get(e.accountId) ?? null;
      if (!account) {
        account = { id: e.accountId, remaining: e.accountRemaining, keys: new Set() };
        this.#accounts.set(account.id, account);
      } else if (account.remaining !== e.accountRemaining) {
        account.remaining = e.accountRemaining;
        for (const m of account.keys) this.#place(m, now);
      }
    }
    const cycleStartedAt = e.cycleStartedAt ?? null;
    const renewal = nextReset(cycleStartedAt, now);
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
      cycleStartedAt,
      lapsesAt: renewal.at,
      renewalBasis: renewal.basis,
      horizon: 0,
      rpm: old?.rpm ?? keyRpm(e.plain),
      rateMinute: old?.rateMinute ?? 0,
      rateNow: old?.rateNow ?? 0,
      ratePrev: old?.ratePrev ?? 0,
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
    const now = this.#clock();
    const k = this.#selector.pick(exclude, now);
    if (k) {
      k.lastUsed = now;
      this.#selector.used(k, now);
    }
    return k;
  }

  /**
   * When no key can be chosen: of the keys resting only because they failed (not because
   * Tavily asked for a rest), the one whose rest ends first. A pool whose every key failed a
   * moment ago (Tavily itself down) tries again rather than refuse until the rests end. Scans
   * the keys: it runs only when the pool has nothing else.
   */
  pickResting(exclude: ReadonlySet<number> = EMPTY, now = this.#clock()): PoolKey | null {
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
  #place(k: PoolKey, now = this.#clock()): void {
    const was = k.slot !== -1;
    const should = this.#keys.get(k.id) === k && this.#selectable(k, now);
    if (was && !should) this.#selector.remove(k);
    else if (!was && should) this.#selector.add(k);
    else if (was) this.#selector.moved(k);
  }

  /** Rests the key after a 429 until Retry-After has passed. */
  coolDown(k: PoolKey, seconds: number, now = this.#clock()): void {
    this.coolUntil(k, now + seconds * 1000, now);
  }

  /** Rests the key until `until` (epoch ms), or longer if it already rests longer. */
  coolUntil(k: PoolKey, until: number, now = this.#clock()): void {
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
      const at = this.#clock();
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

  counts(now = this.#clock()): PoolCounts {
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

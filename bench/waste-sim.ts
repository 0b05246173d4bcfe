/**
 * The waste simulation behind `npm run bench:waste`: a pool of Tavily accounts with staggered
 * billing cycles and plans, a demand curve over 90 days, and the gateway's own KeyPool (its
 * selectors, as the server runs them) choosing a key for every request. Deterministic for a
 * seed: the pool gets the simulation's clock and coin.
 *
 * What Tavily does is modelled here, and only that: each account's credits, reset on its own
 * day of the month (what is left lapses); its per-key rate (development keys 100 requests a
 * minute, production keys 1,000), a 429 past it. What the gateway does around the pool is
 * modelled as it behaves: a 429 rests the key for the rest of the minute (Retry-After 60) and
 * the request fails over to another key; the pool learns of a reset when its next refresh sees
 * the fall (within REFRESH_LAG_MS), and from then on knows the account's cycle.
 */
import { KeyPool, type PoolEntry } from '../src/pool/pool.js';
import type { KeyStrategy } from '../src/config.js';
import { addMonths } from '../src/cycles.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** The simulation starts here (a Monday; any date would do). */
export const START = Date.UTC(2027, 0, 4);
/** The refresh that sees a reset runs this long after it, at most (REFRESH_CRON's hourly default). */
const REFRESH_LAG_MS = HOUR;
/** Failover tries at most this many keys for one request (the gateway's bound on cheap failures). */
const MAX_TRIES = 10;

/** mulberry32: a small, good-enough seeded generator. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function poisson(mean: number, random: () => number): number {
  if (mean <= 0) return 0;
  if (mean > 50) return Math.max(0, Math.round(mean + Math.sqrt(mean) * gaussian(random)));
  const l = Math.exp(-mean);
  let k = 0;
  let p = 1;
  do {
    k++;
    p *= random();
  } while (p > l);
  return k - 1;
}

function gaussian(random: () => number): number {
  return Math.sqrt(-2 * Math.log(random() || 1e-12)) * Math.cos(2 * Math.PI * random());
}

export interface SimAccount {
  name: string;
  /** Credits a cycle. */
  limit: number;
  keys: number;
  /** Development keys (free plan) take 100 requests a minute; production keys 1,000. */
  dev: boolean;
  /** The first reset after START: the cycle began a month before it. */
  firstReset: number;
  /** Whether the pool has seen the current cycle begin (else it counts the calendar month until the first reset it sees). */
  cycleKnown: boolean;
}

export interface Scenario {
  name: string;
  description: string;
  accounts: SimAccount[];
  /** Requests a minute expected at minute `m` of the run (before the Poisson draw). */
  rate: (m: number) => number;
  days: number;
}

const PLANS = { free: 1000, project: 4000, bootstrap: 15_000 } as const;
const BURST_MINUTES = 20;

/**
 * 24 accounts: 16 free (one development key each), 5 Project (two production keys), 3 Bootstrap
 * (three), their cycles on days spread over the month; the pool has seen the cycle of three in
 * four of them.
 */
export function staggeredAccounts(random: () => number, mix: ReadonlyArray<[keyof typeof PLANS, number, number]> = [['free', 16, 1], ['project', 5, 2], ['bootstrap', 3, 3]]): SimAccount[] {
  const list: SimAccount[] = [];
  const add = (plan: keyof typeof PLANS, n: number, keys: number) => {
    for (let i = 0; i < n; i++) {
      list.push({
        name: `${plan}-${i + 1}`,
        limit: PLANS[plan],
        keys,
        dev: plan === 'free',
        firstReset: START + Math.floor(random() * 30 * DAY),
        cycleKnown: random() < 0.75,
      });
    }
  };
  for (const [plan, n, keys] of mix) add(plan, n, keys);
  return list;
}

/** Credits the accounts get in 30 days. */
export function monthlyCapacity(accounts: readonly SimAccount[]): number {
  return accounts.reduce((n, a) => n + a.limit, 0);
}

/** More by day than by night (UTC), weekdays more than weekends: a mean of 1. */
function daily(m: number): number {
  const t = START + m * MINUTE;
  const hour = new Date(t).getUTCHours();
  const weekday = new Date(t).getUTCDay();
  const byHour = 0.55 + 0.9 * Math.max(0, Math.sin(((hour - 6) / 24) * 2 * Math.PI));
  const byDay = weekday === 0 || weekday === 6 ? 0.7 : 1.12;
  return (byHour / 0.836) * byDay;
}

/** Credits a request costs: a basic search 1, an advanced one 2 (a quarter of them). */
export function costOf(random: () => number): number {
  return random() < 0.25 ? 2 : 1;
}
const MEAN_COST = 1.25;

/** The three scenarios of the report, built from one seed. */
export function scenarios(seed: number, days = 90): Scenario[] {
  const accounts = staggeredAccounts(rng(seed));
  const perMinuteOf = (accs: SimAccount[], share: number) => (share * monthlyCapacity(accs)) / (30 * 24 * 60) / MEAN_COST;
  const perMinute = (share: number) => perMinuteOf(accounts, share);
  const minutes = days * 24 * 60;
  const steadyShare = 0.8;
  // The same demand, a third of it in bursts at random times; the rest comes as usual.
  const bursty = (accs: SimAccount[], burstRate: number, salt: number) => {
    const total = (perMinuteOf(accs, steadyShare)) * minutes;
    const burstCount = Math.round(total / 3 / (BURST_MINUTES * burstRate));
    const burstRandom = rng(seed ^ salt);
    const bursts = new Set<number>();
    while (bursts.size < burstCount * BURST_MINUTES) {
      const at = Math.floor(burstRandom() * (minutes - BURST_MINUTES));
      if ([...Array(BURST_MINUTES).keys()].some((i) => bursts.has(at + i))) continue;
      for (let i = 0; i < BURST_MINUTES; i++) bursts.add(at + i);
    }
    const base = (total - bursts.size * burstRate) / minutes;
    return (m: number) => (bursts.has(m) ? burstRate : base * daily(m));
  };
  const free = staggeredAccounts(rng(seed ^ 0x27d4eb2f), [['free', 40, 1]]);
  return [
    {
      name: 'staggered',
      description: 'steady demand at 80% of what the accounts get a month; cycles spread over the month',
      accounts,
      rate: (m) => perMinute(steadyShare) * daily(m),
      days,
    },
    {
      name: 'bursty',
      description: 'the same demand, a third of it in 20-minute bursts of 300 requests a minute',
      accounts,
      rate: bursty(accounts, 300, 0x5bd1e995),
      days,
    },
    {
      name: 'free keys, bursty',
      description: '40 free accounts (one development key each, 100 requests a minute), a third of the demand in bursts of 600 a minute',
      accounts: free,
      rate: bursty(free, 600, 0x165667b1),
      days,
    },
    {
      name: 'runs dry',
      description: 'demand at 130% of what the accounts get a month: the pool runs out before each reset',
      accounts,
      rate: (m) => perMinute(1.3) * daily(m),
      days,
    },
  ];
}

export interface SimResult {
  strategy: KeyStrategy;
  scenario: string;
  requests: number;
  served: number;
  /** Credits left at a reset, lost. */
  lapsed: number;
  /** Credits the accounts were given over the run (the first cycle's and each reset's). */
  granted: number;
  /** Requests no key could serve: no credits left anywhere. */
  refusedNoCredits: number;
  /** Requests no key could serve because every key with credits was resting after a 429. */
  refusedRate: number;
  /** 429s Tavily answered for a key past its per-key rate. */
  rateLimited: number;
  /** Days from the start until the first request refused for want of credits (null: never). */
  dryAfterDays: number | null;
}

interface AccountState {
  spec: SimAccount;
  id: number;
  remaining: number;
  nextReset: number;
  /** When the pool learns of the last reset (its refresh sees the fall). */
  learnAt: number | null;
  cycleSeen: number | null;
  keyIds: number[];
}

/** Runs one strategy over one scenario. */
export function simulate(scenario: Scenario, strategy: KeyStrategy, seed: number): SimResult {
  let now = START;
  const pool = new KeyPool(strategy, { clock: () => now, random: rng(seed ^ 0x9e3779b9) });
  const demand = rng(seed ^ 0x85ebca6b);
  const accounts: AccountState[] = [];
  let nextKeyId = 1;
  const keyAccount = new Map<number, AccountState>();
  for (const [i, spec] of scenario.accounts.entries()) {
    const start = addMonths(spec.firstReset, -1);
    // The first cycle began before the run: what is left of it is in proportion.
    const left = Math.round(spec.limit * Math.min(1, (spec.firstReset - START) / (30 * DAY)));
    const a: AccountState = { spec, id: i + 1, remaining: left, nextReset: spec.firstReset, learnAt: null, cycleSeen: spec.cycleKnown ? start : null, keyIds: [] };
    for (let k = 0; k < spec.keys; k++) {
      a.keyIds.push(nextKeyId);
      keyAccount.set(nextKeyId++, a);
    }
    accounts.push(a);
  }
  const entries = (a: AccountState): PoolEntry[] =>
    a.keyIds.map((id) => ({
      id,
      plain: `${a.spec.dev ? 'tvly-dev-' : 'tvly-prod-'}sim${String(id).padStart(6, '0')}`,
      masked: `sim…${id}`,
      health: a.remaining > 0 ? 'active' : 'exhausted',
      enabled: true,
      remaining: a.remaining,
      lastUsed: 0,
      coolUntil: 0,
      accountId: a.id,
      accountRemaining: a.remaining,
      cycleStartedAt: a.cycleSeen,
    }));
  pool.load(accounts.flatMap(entries));

  const r: SimResult = { strategy, scenario: scenario.name, requests: 0, served: 0, lapsed: 0, granted: accounts.reduce((n, a) => n + a.remaining, 0), refusedNoCredits: 0, refusedRate: 0, rateLimited: 0, dryAfterDays: null };
  const minutes = scenario.days * 24 * 60;
  /** Requests each key sent this minute (Tavily's count), and the keys resting after a 429. */
  const sent = new Map<number, number>();
  const resting = new Set<number>();
  for (let m = 0; m < minutes; m++) {
    now = START + m * MINUTE;
    sent.clear();
    resting.clear();
    for (const a of accounts) {
      if (now >= a.nextReset) {
        r.lapsed += a.remaining;
        a.remaining = a.spec.limit;
        r.granted += a.spec.limit;
        a.learnAt = a.nextReset + Math.floor(demand() * REFRESH_LAG_MS);
        a.nextReset = addMonths(a.nextReset, 1);
      }
      if (a.learnAt !== null && now >= a.learnAt) {
        // The refresh saw the fall: the new figures, and the cycle's start (the check's time).
        a.cycleSeen = a.learnAt;
        a.learnAt = null;
        pool.update(entries(a));
      }
    }
    const n = poisson(scenario.rate(m), demand);
    for (let i = 0; i < n; i++) {
      const cost = costOf(demand);
      r.requests++;
      let done = false;
      for (let tries = 0; tries < MAX_TRIES && !done; tries++) {
        const k = pool.pick(resting);
        if (!k) break;
        const a = keyAccount.get(k.id)!;
        const count = (sent.get(k.id) ?? 0) + 1;
        sent.set(k.id, count);
        if (count > k.rpm) {
          // Tavily: 429, Retry-After 60. The gateway rests the key and tries another.
          r.rateLimited++;
          resting.add(k.id);
          continue;
        }
        if (a.remaining < cost) {
          // Tavily: 432. The pool's figure was stale (a reset not seen yet cannot cause this; spending can).
          pool.deduct(k, k.remaining ?? 0);
          continue;
        }
        a.remaining -= cost;
        pool.deduct(k, cost);
        r.served++;
        done = true;
      }
      if (done) continue;
      const anyCredit = accounts.some((a) => a.remaining > 0 && a.keyIds.some((id) => resting.has(id)));
      if (anyCredit) r.refusedRate++;
      else {
        r.refusedNoCredits++;
        if (r.dryAfterDays === null) r.dryAfterDays = (now - START) / DAY;
      }
    }
  }
  return r;
}

/**
 * node --import tsx bench/admission.ts — the CPU of the steps on a request's path, in one
 * process, without HTTP: putting a search in its one form, pricing it, checking a token's caps,
 * reserving then settling its budget (issue 20); choosing a key by each strategy, and the
 * answer cache's key, lookup and store (issue 23). A steadier figure than the end-to-end
 * run (bench:proxy), whose noise on a shared machine is larger than these costs; compared with
 * the gateway's CPU per request there.
 *
 * Each step runs in 10 alternating rounds of 200,000 calls; the median round is reported.
 */
import { canonicalBody } from '../src/gateway/fields.js';
import { ENDPOINTS } from '../src/gateway/endpoints.js';
import { BudgetLedger } from '../src/gateway/budget.js';
import { compileScopes, scopeRefusal } from '../src/gateway/scopes.js';
import { AnswerCache, cacheKey } from '../src/gateway/cache.js';
import { KeyPool, type PoolEntry } from '../src/pool/pool.js';
import { registry, tokenRow } from '../test/support/tokens.js';

const N = 200_000;
const ROUNDS = 10;

const tokens = registry(tokenRow(1, 1_000_000_000), tokenRow(2, null));
const ledger = new BudgetLedger({ tokens });
const budgeted = tokens.byId(1)!;
const unbudgeted = tokens.byId(2)!;
const scopes = compileScopes({ endpoints: null, networks: null, expiresAt: null, caps: { max_credits: 10, max_results: 20, advanced: false, research_pro: false } });
const search = ENDPOINTS.search;

// What the REST door hands the core. canonicalBody copies a body it changes and leaves the
// given one as it is, so one parsed body serves every call.
const text = JSON.stringify({ query: 'benchmark query', max_results: 3 });
const plain = JSON.parse(text) as Record<string, unknown>;
const textual = { query: 'benchmark query', max_results: '3', search_depth: ' Basic' };

// Ten keys, two accounts' cycles known, the rest not: as a small pool stands.
const DAY = 86_400_000;
const entries: PoolEntry[] = Array.from({ length: 10 }, (_, i) => ({
  id: i + 1,
  plain: `tvly-${i % 2 ? 'dev' : 'prod'}-bench${i}`,
  masked: `…${i}`,
  health: 'active',
  enabled: true,
  remaining: 1000 - i * 7,
  lastUsed: 0,
  coolUntil: 0,
  accountId: null,
  accountRemaining: null,
  cycleStartedAt: i < 4 ? Date.now() - (i + 3) * DAY : null,
}));
// A clock a second on at each pick: keys well under their per-key rate, as at normal load.
let clock = Date.now();
const pools = Object.fromEntries((['most-remaining', 'expiring-first'] as const).map((s) => [s, new KeyPool(s, { clock: () => (clock += 1000) })]));
const saturated = new KeyPool('expiring-first');
for (const p of [...Object.values(pools), saturated]) p.load(entries);
const cache = new AnswerCache({ maxBytes: 64 * 1024 * 1024, maxEntryBytes: 1024 * 1024, maxTtlMs: 86_400_000 });
const answerText = JSON.stringify({ query: 'benchmark query', results: [{ title: 'x'.repeat(200), url: 'https://example.com', content: 'y'.repeat(500) }] });
cache.set(cacheKey('search', plain), { text: answerText, credits: 1, requestId: 'r', storedAt: Date.now() });
let stored = 0;

let sink = 0;
const steps: Record<string, () => void> = {
  'JSON.parse of the body (for scale)': () => {
    sink += Object.keys(JSON.parse(text) as object).length;
  },
  'one form of a plain search (nothing to change)': () => {
    const r = canonicalBody(search.fields, plain);
    sink += 'body' in r ? 1 : 0;
  },
  'one form of a search with text to canonicalise ("3", " Basic")': () => {
    const r = canonicalBody(search.fields, textual);
    sink += 'body' in r ? 1 : 0;
  },
  'price (max) and every cap': () => {
    const most = search.max(plain);
    sink += scopeRefusal(scopes, 'search', plain, null, most) === null ? most : 0;
  },
  'reserve and settle (token with a budget)': () => {
    const r = ledger.reserve(budgeted, 1);
    if (r instanceof Promise || !r.ok) throw new Error('refused');
    ledger.settle(budgeted, r.hold, 1);
  },
  'reserve and settle (token without a budget)': () => {
    const r = ledger.reserve(unbudgeted, 1);
    if (r instanceof Promise || !r.ok) throw new Error('refused');
    ledger.settle(unbudgeted, r.hold, 1);
  },
  'pick a key: most-remaining': () => {
    sink += pools['most-remaining']!.pick()!.id;
  },
  'pick a key: expiring-first': () => {
    sink += pools['expiring-first']!.pick()!.id;
  },
  // The real clock: 200,000 picks a round keep every key at its rate, the worst case (each key checked, then the fallback).
  'pick a key: expiring-first, every key at its rate': () => {
    sink += saturated.pick()!.id;
  },
  'cache key of a search (a token with a cache)': () => {
    sink += cacheKey('search', plain).length;
  },
  'cache key and hit (a token with a cache)': () => {
    sink += cache.get(cacheKey('search', plain), 60_000)!.credits;
  },
  'cache key and store (a miss)': () => {
    sink += cache.set(`search {"query":"q${stored++ % 5000}"}`, { text: answerText, credits: 1, requestId: 'r', storedAt: Date.now() }) ? 1 : 0;
  },
};

const times = new Map<string, number[]>();
for (let round = -1; round < ROUNDS; round++) {
  for (const [name, step] of Object.entries(steps)) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) step();
    const ns = Number(process.hrtime.bigint() - t0) / N;
    if (round >= 0) times.set(name, [...(times.get(name) ?? []), ns]); // round -1 warms up
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(`# admission steps, ${N.toLocaleString('en')} calls × ${ROUNDS} rounds, Node ${process.version}\n`);
console.log('| step | per call (median round) |');
console.log('|---|---:|');
for (const [name, xs] of times) console.log(`| ${name} | ${(median(xs) / 1000).toFixed(3)} µs |`);
if (sink === 42) console.log('');

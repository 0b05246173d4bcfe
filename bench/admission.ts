/**
 * node --import tsx bench/admission.ts — the CPU of what issue 20 added to a request's path,
 * in one process, without HTTP: putting a search in its one form, pricing it, checking a
 * token's caps, and reserving then settling its budget. A steadier figure than the end-to-end
 * run (bench:proxy), whose noise on a shared machine is larger than these costs; compared with
 * the gateway's CPU per request there.
 *
 * Each step runs in 10 alternating rounds of 200,000 calls; the median round is reported.
 */
import { canonicalBody } from '../src/gateway/fields.js';
import { ENDPOINTS } from '../src/gateway/endpoints.js';
import { BudgetLedger } from '../src/gateway/budget.js';
import { compileScopes, scopeRefusal } from '../src/gateway/scopes.js';
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

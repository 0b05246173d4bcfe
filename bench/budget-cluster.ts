/**
 * npm run bench:budget — how far two instances on one PostgreSQL overshoot a token's monthly
 * budget when a burst arrives at both at once, for each CLUSTER_BUDGET_SLACK, and what holding
 * the budget adds to a request's latency.
 *
 * The fake Tavily (30 ms a request) and two gateways (the compiled server) each run in a
 * process of their own, on a PostgreSQL schema made for the run. Each round makes a token with
 * a budget of 100 and sends 200 searches (1 credit each) at once, dealt to the two instances in
 * turn; what was served past 100 is the overshoot. Then, at one request at a time, the latency
 * of a budgeted token's search against an unbudgeted one's, alternating.
 *
 * Options: --database postgres://… (or TEST_DATABASE_URL) --slack 0,5,20 --rounds 20 --burst 200
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { benchSchema, startFake, startGateway } from './support.js';

const { values: args } = parseArgs({
  options: {
    database: { type: 'string' },
    slack: { type: 'string', default: '0,5,20' },
    rounds: { type: 'string', default: '20' },
    burst: { type: 'string', default: '200' },
  },
});
const dbUrl = args.database ?? process.env.TEST_DATABASE_URL ?? process.env.DATABASE_URL;
if (!dbUrl || !/^postgres(ql)?:\/\//.test(dbUrl)) {
  console.error('bench:budget needs PostgreSQL: pass --database postgres://… (or set TEST_DATABASE_URL)');
  process.exit(2);
}
const SLACKS = args.slack.split(',').map(Number);
const ROUNDS = Number(args.rounds);
const BURST = Number(args.burst);
const BUDGET = 100;
const ADMIN = 'bench-budget-admin-token';
const admin = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };
const KEYS = Array.from({ length: 10 }, (_, i) => `tvly-dev-benchbudget${String(i).padStart(4, '0')}`);

const children: ChildProcess[] = [];

async function json<T>(url: string, init: RequestInit = {}): Promise<T> {
  const r = await fetch(url, { ...init, headers: { ...admin, ...(init.headers as Record<string, string> | undefined) } });
  if (r.status >= 300) throw new Error(`${init.method ?? 'GET'} ${url}: ${r.status} ${await r.text()}`);
  return (await r.json()) as T;
}

async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting: ${what}`);
}

const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!;

async function search(pool: Pool, token: string, i: number): Promise<number> {
  const r = await pool.request({ method: 'POST', path: '/search', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ query: `budget ${i}` }) });
  await r.body.dump();
  return r.statusCode;
}

async function runSlack(fakeUrl: string, slack: number) {
  const db = await benchSchema(dbUrl!);
  const env = { ...db.env, TAVILY_BASE_URL: fakeUrl, ADMIN_TOKEN: ADMIN, ENCRYPTION_KEY: randomBytes(32).toString('hex'), REFRESH_ON_START: 'false', VALIDATE_ON_IMPORT: 'false', CLUSTER_BUDGET_SLACK: String(slack) };
  const gws = [];
  try {
    for (let i = 0; i < 2; i++) gws.push(await startGateway(children, { ...env, DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'tavily-pool-bench-budget-')) }));
    const [a, b] = gws as [(typeof gws)[0], (typeof gws)[0]];
    await json(`${a.url}/api/v1/admin/tavily-keys`, { method: 'POST', body: JSON.stringify({ keys: KEYS }) });
    // Each instance hears the other's heartbeat (its figures count from then on).
    await until('the instances hear each other', async () => (await json<{ items: unknown[] }>(`${b.url}/api/v1/admin/instances`)).items.length === 2);
    const pools = gws.map((g) => new Pool(g.url, { connections: 128 }));
    const served: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const tok = await json<{ token: string; item: { id: number } }>(`${a.url}/api/v1/admin/tokens`, { method: 'POST', body: JSON.stringify({ name: `round ${r}`, monthly_budget: BUDGET }) });
      await until('B knows the token', async () => (await json<{ items: Array<{ id: number }> }>(`${b.url}/api/v1/admin/tokens`)).items.some((x) => x.id === tok.item.id));
      const codes = await Promise.all(Array.from({ length: BURST }, (_, i) => search(pools[i % 2]!, tok.token, i)));
      const unexpected = codes.filter((c) => c !== 200 && c !== 432);
      if (unexpected.length > 0) throw new Error(`unexpected answers: ${[...new Set(unexpected)].join(', ')}`);
      served.push(codes.filter((c) => c === 200).length);
    }
    // Latency one request at a time: a budgeted token (its reservation waits for its notice
    // to come back when slack is 0) against an unbudgeted one, alternating, on instance A.
    const budgeted = await json<{ token: string }>(`${a.url}/api/v1/admin/tokens`, { method: 'POST', body: JSON.stringify({ name: 'latency budgeted', monthly_budget: 1_000_000_000 }) });
    const free = await json<{ token: string }>(`${a.url}/api/v1/admin/tokens`, { method: 'POST', body: JSON.stringify({ name: 'latency free' }) });
    const lat = { budgeted: [] as number[], free: [] as number[] };
    for (let i = 0; i < 400; i++) {
      for (const [k, t] of [['budgeted', budgeted.token], ['free', free.token]] as const) {
        const t0 = process.hrtime.bigint();
        if ((await search(pools[0]!, t, i)) !== 200) throw new Error('latency request refused');
        if (i >= 50) lat[k].push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
    }
    await Promise.all(pools.map((p) => p.close()));
    return { slack, served, lat };
  } finally {
    for (const g of gws) g.process.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    await db.drop();
  }
}

async function main(): Promise<void> {
  const fakeUrl = await startFake(children, 30);
  console.log(`# budget across instances: 2 gateways on one PostgreSQL, fake Tavily at 30 ms, a budget of ${BUDGET}, ${BURST} searches at once (1 credit each) dealt to the two in turn, ${ROUNDS} rounds per setting; Node ${process.version}, ${os.cpus().length} cores\n`);
  console.log('| CLUSTER_BUDGET_SLACK | bound (N − 1) × slack | served per round (min–max) | overshoot: worst | mean | search p50, budgeted | unbudgeted | added |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|');
  try {
    for (const slack of SLACKS) {
      const r = await runSlack(fakeUrl, slack);
      const over = r.served.map((s) => Math.max(0, s - BUDGET));
      const p50b = quantile(r.lat.budgeted, 0.5);
      const p50f = quantile(r.lat.free, 0.5);
      console.log(
        `| ${slack} | ${slack} | ${Math.min(...r.served)}–${Math.max(...r.served)} | ${Math.max(...over)} | ${(over.reduce((a, b) => a + b, 0) / over.length).toFixed(1)} | ${p50b.toFixed(2)} ms | ${p50f.toFixed(2)} ms | ${(p50b - p50f).toFixed(2)} ms |`,
      );
    }
  } finally {
    for (const c of children) c.kill('SIGTERM');
  }
}

await main();
process.exit(0);

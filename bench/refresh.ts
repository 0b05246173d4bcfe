/**
 * npm run bench:refresh — the batched quota refresh against a fake Tavily at 200 ms latency.
 *
 * For each N it measures, in one run: the first (cold) refresh, later (warm) refreshes, the
 * lower bound ⌈N/C⌉ × latency, a bare undici client making the same N calls at the same
 * concurrency, the write phase, and peak RSS. With --naive it also times the naive shape
 * (serial calls, one commit per key) for the smallest N.
 *
 * Options (env or flags): --sizes 100,1000,10000  --concurrency 1000  --latency 200  --runs 3
 *   --database postgres://…  (default: a SQLite file in a temp dir)  --no-naive (skip the naive run at N ≤ 100)
 */
import { type ChildProcess, fork } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { loadConfig } from '../src/config.js';
import { type AppContext, createContext } from '../src/context.js';
import { generateEncryptionKey, parseEncryptionKey } from '../src/crypto.js';
import { createLogger } from '../src/logger.js';
import { figuresFromUsage } from '../src/tavily/usage.js';

const { values: args } = parseArgs({
  options: {
    sizes: { type: 'string', default: process.env.BENCH_SIZES ?? '100,1000,10000' },
    concurrency: { type: 'string', default: process.env.BENCH_CONCURRENCY ?? '1000' },
    latency: { type: 'string', default: process.env.BENCH_LATENCY_MS ?? '200' },
    runs: { type: 'string', default: process.env.BENCH_RUNS ?? '3' },
    database: { type: 'string', default: process.env.BENCH_DATABASE_URL ?? '' },
    'no-naive': { type: 'boolean', default: false },
  },
});
const sizes = args.sizes.split(',').map(Number);
const C = Number(args.concurrency);
const LATENCY = Number(args.latency);
const RUNS = Math.max(1, Number(args.runs));

async function startFake(): Promise<{ url: string; child: ChildProcess; stats(): Promise<{ usageCalls: number; maxInFlight: number }>; reset(): Promise<void> }> {
  const child = fork(path.resolve('test/support/fake-tavily.ts'), [], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, LATENCY_MS: String(LATENCY), PORT: '0' },
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (d) => {
      buf += d;
      const line = buf.split('\n')[0];
      if (buf.includes('\n') && line) resolve((JSON.parse(line) as { url: string }).url);
    });
    child.once('exit', (code) => reject(new Error(`fake Tavily exited with ${code}`)));
  });
  const ask = <T>(msg: object) =>
    new Promise<T>((resolve) => {
      child.once('message', (m) => resolve(m as T));
      child.send(msg);
    });
  return {
    url,
    child,
    stats: async () => (await ask<{ stats: { usageCalls: number; maxInFlight: number } }>({ cmd: 'stats' })).stats,
    reset: async () => void (await ask({ cmd: 'reset' })),
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** The baseline: a bare undici pool making the same calls at the same concurrency, nothing else. */
async function bareClient(url: string, keys: string[], concurrency: number, pool: Pool): Promise<number> {
  const t0 = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < keys.length) {
      const key = keys[next++]!;
      const res = await pool.request({ method: 'GET', path: '/usage', headers: { authorization: `Bearer ${key}` } });
      await res.body.json();
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, keys.length) }, worker));
  return performance.now() - t0;
}

/** The naive shape the project began from: one query, then per key a call and a commit, in series. */
async function naiveRefresh(ctx: AppContext): Promise<number> {
  const t0 = performance.now();
  const rows = await ctx.parts.database.db.selectFrom('tavily_keys').select(['id', 'key_ciphertext']).execute();
  for (const r of rows) {
    const report = await ctx.parts.tavily.usage(ctx.parts.cipher.decrypt(r.key_ciphertext), 30_000);
    const f = figuresFromUsage(report, new Date().toISOString());
    await ctx.parts.database.db
      .updateTable('tavily_keys')
      .set({ ...f, last_refreshed_at: new Date().toISOString() })
      .where('id', '=', r.id)
      .execute();
  }
  return performance.now() - t0;
}

async function openContext(url: string): Promise<{ ctx: AppContext; cleanup: () => Promise<void> }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tavily-pool-bench-'));
  const config = loadConfig({
    DATA_DIR: dir,
    TAVILY_BASE_URL: url,
    REFRESH_CONCURRENCY: String(C),
    REFRESH_TIMEOUT_MS: '30000',
    ...(args.database ? { DATABASE_URL: args.database } : {}),
  });
  const schema = `bench_${Date.now()}`;
  if (config.database.kind === 'postgres') {
    const pg = (await import('pg')).default;
    const c = new pg.Client({ connectionString: config.database.url });
    await c.connect();
    await c.query(`create schema ${schema}`);
    await c.end();
  }
  const ctx = await createContext(
    config,
    { adminToken: 'bench-admin-token-0000', encryptionKey: parseEncryptionKey(generateEncryptionKey()) },
    createLogger('silent'),
    config.database.kind === 'postgres' ? { pgSearchPath: schema } : {},
  );
  return {
    ctx,
    cleanup: async () => {
      await ctx.close();
      if (config.database.kind === 'postgres') {
        const pg = (await import('pg')).default;
        const c = new pg.Client({ connectionString: config.database.url });
        await c.connect();
        await c.query(`drop schema ${schema} cascade`);
        await c.end();
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

const fmt = (ms: number) => (ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`);
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`;

const fake = await startFake();
const db = args.database ? 'PostgreSQL' : 'SQLite';
console.log(`# refresh benchmark: fake Tavily at ${LATENCY} ms, C = ${C}, ${db}, Node ${process.version}, ${os.cpus().length} cores`);
console.log(`# warm and bare figures are medians of ${RUNS} runs\n`);
const rows: string[] = [];
try {
  for (const n of sizes) {
    const { ctx, cleanup } = await openContext(fake.url);
    try {
      const keys = Array.from({ length: n }, (_, i) => `tvly-dev-bench${String(i).padStart(8, '0')}`);
      await ctx.services.keys.add({ remote_addr: null, user_agent: 'bench' }, { inputs: keys, label: 'bench', validate: false });

      await fake.reset();
      const cold = await ctx.parts.refresher.refresh();
      const stats = await fake.stats();
      if (cold.success_count !== n || stats.usageCalls !== n) throw new Error(`cold refresh: ${cold.success_count}/${n} ok, ${stats.usageCalls} calls`);
      // Warm runs of the refresh and of the bare client alternate, so that the machine's
      // noise falls on both alike; each figure is the median of its runs.
      const bare = new Pool(new URL(fake.url).origin, { connections: null, keepAliveTimeout: 60_000 });
      await bareClient(fake.url, keys, C, bare); // cold: opens its connections
      const warm = [];
      const bareRuns = [];
      for (let i = 0; i < RUNS; i++) {
        warm.push(await ctx.parts.refresher.refresh());
        bareRuns.push(await bareClient(fake.url, keys, C, bare));
      }
      await bare.close();
      const warmMs = median(warm.map((r) => r.duration_ms));
      const writeMs = median(warm.map((r) => r.write_ms));
      const bareMs = median(bareRuns);

      // The check that figures landed: every key has the numbers the fake reported.
      const sample = await ctx.parts.repos.keys.list({ sort: 'created_at', order: 'asc', limit: 1 });
      if (sample.rows[0]?.remaining_quota === null) throw new Error('refresh stored no figures');

      const bound = Math.ceil(n / C) * LATENCY;
      let naive = '';
      if (!args['no-naive'] && n <= 100) naive = fmt(await naiveRefresh(ctx));
      const rss = process.resourceUsage().maxRSS / 1024;
      rows.push(
        `| ${n.toLocaleString('en-US')} | ${fmt(cold.duration_ms)} | ${fmt(warmMs)} | ${fmt(bound)} | ${fmt(bareMs)} | ${ratio(warmMs, bareMs)} | ${ratio(warmMs, bound)} | ${writeMs.toFixed(1)} ms | ${stats.maxInFlight} | ${Math.round(rss)} MiB | ${naive || '–'} |`,
      );
      console.error(`N=${n}: cold ${cold.duration_ms} ms, bare ${Math.round(bareMs)} ms, warm runs: ${warm.map((r) => `${r.duration_ms} (load ${r.load_ms}, fetch ${r.fetch_ms}, write ${r.write_ms})`).join(', ')}`);
    } finally {
      await cleanup();
    }
  }
} finally {
  fake.child.kill('SIGTERM');
}
console.log('| keys | cold | warm | bound ⌈N/C⌉×latency | bare undici | warm ÷ bare | warm ÷ bound | write phase | max in flight | peak RSS | naive (serial, commit per key) |');
console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const r of rows) console.log(r);
process.exit(0);

/**
 * npm run bench:admin — does big admin work freeze the gateway?
 *
 * The fake Tavily (0 ms) and the gateway (the compiled server; SQLite, or PostgreSQL with
 * --database) each run in a process of their own. This process sends searches at a fixed rate
 * (open loop: a request is due at its time whatever the answers do, and its latency counts
 * from that time, so a frozen event loop shows in full) while the gateway does, one after
 * another:
 *   - nothing (the baseline),
 *   - a JSON import of N keys (default 100,000),
 *   - a text/plain import of N other keys,
 *   - the export of every key (2N),
 *   - a bulk delete of N keys,
 *   - nothing again.
 * For each phase it reports how long the admin call took and the searches' p50, p99 and
 * slowest latency. The target: the slowest search during any of them under 100 ms. The load
 * generator runs in a process of its own (this one builds and reads the multi-megabyte admin
 * bodies).
 *
 * Options: --keys 100000 --rate 200 --baseline 5 --database postgres://…
 */
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { Pool } from 'undici';
import { startFake, waitFor } from './support.js';

const { values: args } = parseArgs({
  options: {
    keys: { type: 'string', default: '100000' },
    rate: { type: 'string', default: '200' },
    baseline: { type: 'string', default: '5' },
    database: { type: 'string' },
    'load-generator': { type: 'boolean', default: false },
  },
});
const N = Number(args.keys);
const RATE = Number(args.rate);
const BASELINE_MS = Number(args.baseline) * 1000;
const ADMIN = 'bench-admin-load-admin-token';
const admin = { authorization: `Bearer ${ADMIN}` };
const children: ChildProcess[] = [];

const LOOP_FILE = path.join(os.tmpdir(), `tavily-pool-bench-loop-${process.pid}.json`);
let gatewayPid = 0;

/** The gateway's own event-loop delay since the last call (bench/loop-monitor.mjs, preloaded). */
async function loopDelay(): Promise<{ max: number; p99: number }> {
  fs.rmSync(LOOP_FILE, { force: true });
  process.kill(gatewayPid, 'SIGUSR2');
  for (let i = 0; i < 200 && !fs.existsSync(LOOP_FILE); i++) await new Promise((r) => setTimeout(r, 10));
  for (let i = 0; i < 20; i++) {
    try {
      return JSON.parse(fs.readFileSync(LOOP_FILE, 'utf8')) as { max: number; p99: number };
    } catch {
      await new Promise((r) => setTimeout(r, 10)); // written a moment ago: read it again
    }
  }
  throw new Error('the gateway did not report its event-loop delay');
}

async function startGateway(env: Record<string, string>): Promise<string> {
  const gw = spawn(process.execPath, ['--import', path.resolve('bench/loop-monitor.mjs'), path.resolve('dist/src/server.js')], {
    env: {
      LOOP_MONITOR_FILE: LOOP_FILE,
      PATH: process.env.PATH ?? '',
      DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'tavily-pool-bench-admin-')),
      HOST: '127.0.0.1',
      PORT: '0',
      ADMIN_TOKEN: ADMIN,
      LOG_LEVEL: 'warn',
      REFRESH_ON_START: 'false',
      // The imports are measured alone, without the /usage checks that would follow them.
      VALIDATE_ON_IMPORT: 'false',
      IMPORT_BODY_LIMIT_BYTES: String(64 * 1024 * 1024),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(gw);
  gatewayPid = gw.pid!;
  let out = '';
  gw.stdout!.on('data', (d) => (out += d));
  gw.stderr!.on('data', (d) => (out += d));
  return waitFor(() => out, /dashboard: +(http:\/\/127\.0\.0\.1:\d+)\//, 'gateway');
}

interface Sample {
  /** When the request was due (ms since the phase started). */
  at: number;
  ms: number;
  ok: boolean;
}

/**
 * Searches at RATE a second until stopped, from a process of its own: this process builds and
 * reads multi-megabyte admin bodies, which would stall a load generator sharing its event loop.
 * Each latency counts from the moment the request was due.
 */
function load(url: string, token: string) {
  const child = fork(fileURLToPath(import.meta.url), ['--load-generator'], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, LOAD_URL: url, LOAD_TOKEN: token, LOAD_RATE: String(RATE) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  children.push(child);
  const ready = new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`the load generator exited (${code})`)));
  });
  return {
    ready,
    stop(): Promise<Sample[]> {
      return new Promise((resolve) => {
        child.once('message', (m: { samples: Sample[] }) => resolve(m.samples));
        child.send('stop');
      });
    },
  };
}

/** The load generator's side (run with --load-generator). */
async function generate(): Promise<void> {
  const url = process.env.LOAD_URL!;
  const rate = Number(process.env.LOAD_RATE);
  const pool = new Pool(url, { connections: 64 });
  const samples: Sample[] = [];
  const inflight = new Set<Promise<void>>();
  const start = performance.now();
  let sent = 0;
  let stopped = false;
  const body = JSON.stringify({ query: 'admin load benchmark' });
  const headers = { authorization: `Bearer ${process.env.LOAD_TOKEN}`, 'content-type': 'application/json' };
  const tick = () => {
    if (stopped) return;
    const due = Math.floor(((performance.now() - start) / 1000) * rate);
    for (; sent < due; sent++) {
      const dueAt = start + (sent * 1000) / rate;
      const p: Promise<void> = pool
        .request({ method: 'POST', path: '/search', headers, body })
        .then(async (res) => {
          await res.body.dump();
          samples.push({ at: dueAt - start, ms: performance.now() - dueAt, ok: res.statusCode === 200 });
        })
        .catch(() => void samples.push({ at: dueAt - start, ms: performance.now() - dueAt, ok: false }))
        .finally(() => inflight.delete(p));
      inflight.add(p);
    }
    setTimeout(tick, 1);
  };
  tick();
  process.send!('ready');
  process.once('message', async () => {
    stopped = true;
    await Promise.all(inflight);
    await pool.close();
    process.send!({ samples }, () => process.exit(0));
  });
}

interface PhaseResult {
  phase: string;
  adminMs: number | null;
  adminStatus: number | null;
  searches: number;
  errors: number;
  p50: number;
  p99: number;
  max: number;
  /** The gateway's event loop: the longest it stood still, and the 99th percentile of its delay. */
  loopMax: number;
  loopP99: number;
}

async function phase(name: string, url: string, token: string, work: (() => Promise<number>) | null): Promise<PhaseResult> {
  const l = load(url, token);
  await l.ready;
  await new Promise((r) => setTimeout(r, 300)); // the load is running before the work starts
  await loopDelay();
  const t0 = performance.now();
  let status: number | null = null;
  if (work) status = await work();
  else await new Promise((r) => setTimeout(r, BASELINE_MS));
  const adminMs = performance.now() - t0;
  await new Promise((r) => setTimeout(r, 300));
  const loop = await loopDelay();
  const samples = await l.stop();
  const ms = samples.map((s) => s.ms).sort((a, b) => a - b);
  const at = (q: number) => ms[Math.min(ms.length - 1, Math.floor(q * ms.length))] ?? Number.NaN;
  return { phase: name, adminMs: work ? adminMs : null, adminStatus: status, searches: samples.length, errors: samples.filter((s) => !s.ok).length, p50: at(0.5), p99: at(0.99), max: ms.at(-1) ?? Number.NaN, loopMax: loop.max, loopP99: loop.p99 };
}

const keyText = (prefix: string, i: number) => `tvly-dev-${prefix}${String(i).padStart(8, '0')}`;

async function main(): Promise<void> {
  let schema: { drop: () => Promise<void> } | null = null;
  let dbEnv: Record<string, string> = {};
  if (args.database) {
    const name = `bench_${randomBytes(5).toString('hex')}`;
    const c = new pg.Client({ connectionString: args.database });
    await c.connect();
    await c.query(`create schema ${name}`);
    dbEnv = { DATABASE_URL: args.database, PGOPTIONS: `-c search_path=${name}` };
    schema = { drop: async () => void (await c.query(`drop schema if exists ${name} cascade`), await c.end()) };
  }
  try {
    const fakeUrl = await startFake(children);
    const url = await startGateway({ TAVILY_BASE_URL: fakeUrl, ...dbEnv });
    const base = Array.from({ length: 20 }, (_, i) => keyText('base', i));
    const add = await fetch(`${url}/api/v1/admin/tavily-keys`, { method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ keys: base }) });
    if (add.status !== 201) throw new Error(`setup import failed: ${add.status}`);
    const token = ((await (await fetch(`${url}/api/v1/admin/tokens`, { method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: '{"name":"bench"}' })).json()) as { token: string }).token;
    // Warm the gateway (JIT, connections) before measuring.
    await phase('warm-up', url, token, null);

    console.log(`# admin-load benchmark: ${N.toLocaleString('en')} keys, searches at ${RATE}/s (open loop), fake Tavily at 0 ms, gateway on ${args.database ? 'PostgreSQL' : 'SQLite'}, Node ${process.version}, ${os.cpus().length} cores\n`);
    const results: PhaseResult[] = [];
    const run = async (name: string, work: (() => Promise<number>) | null) => {
      const r = await phase(name, url, token, work);
      results.push(r);
      process.stderr.write(`  ${name}: admin ${r.adminMs === null ? '–' : `${Math.round(r.adminMs)} ms (${r.adminStatus})`}, slowest search ${r.max.toFixed(1)} ms\n`);
    };

    let firstId = 0;
    await run('no admin work', null);
    await run(`JSON import of ${N.toLocaleString('en')} keys`, async () => {
      const keys = Array.from({ length: N }, (_, i) => keyText('json', i));
      const r = await fetch(`${url}/api/v1/admin/tavily-keys`, { method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ keys }) });
      const body = (await r.json()) as { added: number; items: { id: number }[] };
      if (body.added !== N) throw new Error(`JSON import added ${body.added}`);
      firstId = body.items[0]!.id;
      return r.status;
    });
    await run(`text import of ${N.toLocaleString('en')} keys`, async () => {
      const text = Array.from({ length: N }, (_, i) => keyText('text', i)).join('\n');
      const r = await fetch(`${url}/api/v1/admin/tavily-keys`, { method: 'POST', headers: { ...admin, 'content-type': 'text/plain' }, body: text });
      const body = (await r.json()) as { added: number };
      if (body.added !== N) throw new Error(`text import added ${body.added}`);
      return r.status;
    });
    await run(`export of ${(2 * N + base.length).toLocaleString('en')} keys`, async () => {
      const r = await fetch(`${url}/api/v1/admin/tavily-keys/export`, { headers: admin });
      const text = await r.text();
      const lines = text.split('\n').filter(Boolean).length;
      if (lines !== 2 * N + base.length) throw new Error(`export gave ${lines} lines`);
      return r.status;
    });
    await run(`bulk delete of ${N.toLocaleString('en')} keys`, async () => {
      // The JSON import's keys have consecutive ids (one transaction, one sequence).
      const ids = Array.from({ length: N }, (_, i) => firstId + i);
      const r = await fetch(`${url}/api/v1/admin/tavily-keys/bulk`, { method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ action: 'delete', ids }) });
      const body = (await r.json()) as { affected: number };
      if (body.affected !== N) throw new Error(`bulk delete affected ${body.affected}`);
      return r.status;
    });
    await run('no admin work (again)', null);

    const f = (ms: number) => `${ms.toFixed(1)} ms`;
    console.log('| phase | admin call | searches | errors | search p50 | search p99 | slowest search | gateway event loop: longest stall | loop delay p99 |');
    console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of results) {
      console.log(`| ${r.phase} | ${r.adminMs === null ? '–' : `${(r.adminMs / 1000).toFixed(2)} s`} | ${r.searches} | ${r.errors} | ${f(r.p50)} | ${f(r.p99)} | ${f(r.max)} | ${f(r.loopMax)} | ${f(r.loopP99)} |`);
    }
    const during = results.filter((r) => r.adminMs !== null);
    const worst = Math.max(...during.map((r) => r.max));
    const stall = Math.max(...during.map((r) => r.loopMax));
    console.log(`\nslowest search during admin work: ${f(worst)} (target < 100 ms): ${worst < 100 ? 'met' : 'not met'}; longest event-loop stall: ${f(stall)}`);
  } finally {
    for (const c of children) c.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    await schema?.drop();
  }
}

if (args['load-generator']) await generate();
else await main();

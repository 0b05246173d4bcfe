/**
 * npm run bench:proxy — what the gateway costs over calling the upstream directly.
 *
 * The fake Tavily (0 ms) and the gateway (the compiled server, SQLite) each run in a process
 * of their own. In one run it measures, directly against the fake and through the gateway:
 *  - saturation: 32 connections for 10 s a path (5 alternating rounds of 2 s) → requests/s
 *    (mean of the rounds), p50 and p99 (median of the rounds). With `wrk` installed
 *    (apt-get install wrk) the load comes from it: a Node load generator would take CPU from
 *    the processes under test on a 2-core machine. A minimal Node proxy (http + undici, no
 *    framework, no accounting) is measured alongside, as the floor of any Node proxy here.
 *  - latency at a fixed 1,000 requests/s (open loop, from this process) for 10 s a path, in 5
 *    alternating rounds with samples pooled → p50, p99, and what the gateway adds. Latencies are taken with process.hrtime (µs precision).
 *
 * Options: --connections 32 --duration 10 --rate 1000
 *
 * --instances 2 --database postgres://… — the multi-instance mode: one gateway, then two
 * gateways sharing one PostgreSQL (a schema made for the run and dropped after), behind a
 * small round-robin load generator (this process: each request goes to the next instance).
 * Reports requests/s for direct, 1 instance and 2 instances, measured in the same run with
 * the same generator, in alternating rounds.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { benchSchema, startFake, startGateway as startSharedGateway, waitFor } from './support.js';

const { values: args } = parseArgs({
  options: {
    connections: { type: 'string', default: '32' },
    duration: { type: 'string', default: '10' },
    rate: { type: 'string', default: '1000' },
    instances: { type: 'string', default: '1' },
    database: { type: 'string' },
  },
});
const CONNECTIONS = Number(args.connections);
const DURATION_MS = Number(args.duration) * 1000;
const RATE = Number(args.rate);
const INSTANCES = Number(args.instances);

interface Target {
  name: string;
  origin: string;
  headers: Record<string, string>;
  /** Where the request goes, and what it sends (a search, unless said). */
  path?: string;
  body?: string;
}

interface Result {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  count: number;
}

const BODY = JSON.stringify({ query: 'benchmark query', max_results: 3 });

function summarise(latNs: number[], errors: number, elapsedMs: number): Result {
  const sorted = Float64Array.from(latNs).sort();
  const at = (q: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! / 1e6 : Number.NaN);
  return { rps: (latNs.length / elapsedMs) * 1000, p50: at(0.5), p99: at(0.99), errors, count: latNs.length };
}

async function once(pool: Pool, t: Target): Promise<boolean> {
  const res = await pool.request({ method: 'POST', path: t.path ?? '/search', headers: t.headers, body: t.body ?? BODY });
  await res.body.dump();
  return res.statusCode === 200;
}

/** Requests sent at a fixed rate whatever the answers do (so queueing shows in the latency). */
async function openLoop(t: Target, rate: number, durationMs: number): Promise<Result & { samples: number[] }> {
  const pool = new Pool(t.origin, { connections: 256 });
  const lat: number[] = [];
  let errors = 0;
  const inflight: Promise<void>[] = [];
  const start = performance.now();
  let sent = 0;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      const due = Math.min(Math.floor(((now - start) / 1000) * rate), Math.floor((durationMs / 1000) * rate));
      for (; sent < due; sent++) {
        const t0 = process.hrtime.bigint();
        inflight.push(
          once(pool, t)
            .then((ok) => {
              if (ok) lat.push(Number(process.hrtime.bigint() - t0));
              else errors++;
            })
            .catch(() => void errors++),
        );
      }
      if (now - start >= durationMs) resolve();
      else setImmediate(tick);
    };
    tick();
  });
  await Promise.all(inflight);
  const elapsed = performance.now() - start;
  await pool.close();
  return { ...summarise(lat, errors, elapsed), samples: lat };
}

const HAVE_WRK = spawnSync('wrk', ['--version']).error === undefined;

/** Saturation: wrk when installed (a closed loop in C: the load generator takes little CPU). */
const saturate = (t: Target, durationMs: number): Promise<Result> => (HAVE_WRK ? Promise.resolve(wrkRun([t], durationMs, 1)) : roundRobinLoop([t], durationMs));

/**
 * wrk over one or more targets: its threads are dealt out to the targets in turn (wrk's
 * `setup` sets each thread's address), so the connections are spread round-robin.
 */
function wrkRun(targets: Target[], durationMs: number, threads: number): Result {
  const lua = path.join(os.tmpdir(), 'tavily-pool-bench-rr.lua');
  const ports = targets.map((t) => new URL(t.origin).port);
  fs.writeFileSync(
    lua,
    `local ports = {${ports.map((p) => `"${p}"`).join(', ')}}\nlocal n = 0\n` +
      `setup = function(thread)\n  n = n + 1\n  thread.addr = wrk.lookup("127.0.0.1", ports[((n - 1) % #ports) + 1])[1]\nend\n` +
      `wrk.method = "POST"\nwrk.body = '${targets[0]!.body ?? BODY}'\n` +
      Object.entries(targets[0]!.headers).map(([k, v]) => `wrk.headers["${k}"] = "${v}"`).join('\n') +
      `\ndone = function(summary, latency, requests)\n  io.write(string.format("RESULT %d %d %f %f %f\\n", summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, summary.duration, latency:percentile(50), latency:percentile(99)))\nend\n`,
  );
  const out = execFileSync('wrk', [`-t${threads}`, `-c${CONNECTIONS}`, `-d${Math.round(durationMs / 1000)}s`, '-s', lua, `${targets[0]!.origin}${targets[0]!.path ?? '/search'}`], { encoding: 'utf8' });
  const m = /RESULT (\d+) (\d+) ([\d.]+) ([\d.]+) ([\d.]+)/.exec(out);
  if (!m) throw new Error(`wrk printed no result:\n${out}`);
  const [, n, errors, durUs, p50Us, p99Us] = m.map(Number) as number[];
  return { rps: n! / (durUs! / 1e6), p50: p50Us! / 1000, p99: p99Us! / 1000, errors: errors!, count: n! };
}

/** The floor: the least a Node proxy does (read the body, forward it with undici, send the answer back). */
const MINIMAL_PROXY = `
const http = require('node:http');
const { Pool } = require(${JSON.stringify(path.resolve('node_modules/undici'))});
const pool = new Pool(process.env.UPSTREAM, { connections: null });
const server = http.createServer((req, res) => {
  let body = '';
  req.on('data', (d) => (body += d));
  req.on('end', async () => {
    const up = await pool.request({ method: 'POST', path: '/search', headers: { authorization: process.env.KEY, 'content-type': 'application/json' }, body });
    const text = await up.body.text();
    res.writeHead(up.statusCode, { 'content-type': 'application/json' });
    res.end(text);
  });
});
server.listen(0, '127.0.0.1', () => console.log('Server listening at http://127.0.0.1:' + server.address().port));
`;

/** CPU seconds a process has used (user + system), from /proc. */
function cpuSeconds(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (CLK_TCK 100)
}

/** The machine's busy and total CPU time so far, from /proc/stat. */
function machineCpu(): { busy: number; total: number } {
  const [, ...v] = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  return { busy: total - v[3]! - v[4]!, total }; // idle, iowait
}

/** As fast as the targets answer, over `connections` connections; each request goes to the next target. */
async function roundRobinLoop(targets: Target[], durationMs: number): Promise<Result> {
  const pools = targets.map((t) => new Pool(t.origin, { connections: CONNECTIONS }));
  const lat: number[] = [];
  let errors = 0;
  let next = 0;
  const start = performance.now();
  const end = start + durationMs;
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (performance.now() < end) {
        const i = next++ % targets.length;
        const t0 = process.hrtime.bigint();
        const ok = await once(pools[i]!, targets[i]!).catch(() => false);
        if (ok) lat.push(Number(process.hrtime.bigint() - t0));
        else errors++;
      }
    }),
  );
  const elapsed = performance.now() - start;
  await Promise.all(pools.map((p) => p.close()));
  return summarise(lat, errors, elapsed);
}

const children: ChildProcess[] = [];
const ADMIN = 'bench-proxy-admin-token';
const adminHeaders = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };
const KEYS = Array.from({ length: 20 }, (_, i) => `tvly-dev-benchproxy${String(i).padStart(4, '0')}`);

/** A gateway: the compiled server in a process of its own, with the admin token of this run. */
const startGateway = (env: Record<string, string>) => startSharedGateway(children, { ADMIN_TOKEN: ADMIN, ...env });

/** Keys and a client token. The keys are not refreshed: an unknown quota is not spent down,
 * so the pool never runs dry mid-run (refreshed free keys would hold ~20,000 credits in all). */
async function setUpGateway(url: string): Promise<string> {
  const r = await fetch(`${url}/api/v1/admin/tavily-keys`, { method: 'POST', headers: adminHeaders, body: JSON.stringify({ keys: KEYS }) });
  if (r.status !== 201) throw new Error(`import failed: ${r.status} ${await r.text()}`);
  const tok = (await (await fetch(`${url}/api/v1/admin/tokens`, { method: 'POST', headers: adminHeaders, body: JSON.stringify({ name: 'bench' }) })).json()) as { token: string };
  return tok.token;
}

async function loggedRequests(url: string): Promise<number> {
  const stats = (await (await fetch(`${url}/api/v1/admin/stats`, { headers: adminHeaders })).json()) as { by_day: { requests: number }[] };
  return stats.by_day.reduce((s, d) => s + d.requests, 0);
}

const f = (ms: number) => `${ms.toFixed(2)} ms`;
const ROUNDS = 5;

/** Mean requests/s of the rounds, median p50 and p99 (each round is a short run). */
function pooled(rs: Result[]): Result {
  return {
    rps: rs.reduce((a, r) => a + r.rps, 0) / rs.length,
    p50: [...rs.map((r) => r.p50)].sort((a, b) => a - b)[Math.floor(rs.length / 2)]!,
    p99: [...rs.map((r) => r.p99)].sort((a, b) => a - b)[Math.floor(rs.length / 2)]!,
    errors: rs.reduce((a, r) => a + r.errors, 0),
    count: rs.reduce((a, r) => a + r.count, 0),
  };
}

/**
 * Each measurement runs in ROUNDS short rounds that alternate between the paths, so that a
 * burst of noise on this shared machine falls on all of them alike.
 */
async function alternate<T extends { name: string }>(paths: T[], run: (p: T, ms: number) => Promise<Result>): Promise<Map<string, Result>> {
  for (const p of paths) await run(p, 2000); // warm every path (JIT, connections)
  const all = new Map<string, Result[]>();
  for (let r = 0; r < ROUNDS; r++) {
    for (const p of paths) {
      const list = all.get(p.name) ?? [];
      list.push(await run(p, DURATION_MS / ROUNDS));
      all.set(p.name, list);
    }
  }
  return new Map([...all].map(([k, v]) => [k, pooled(v)]));
}

/** One gateway (SQLite, or PostgreSQL with --database) against direct calls and a minimal Node proxy. */
async function singleMode(): Promise<void> {
  const fakeUrl = await startFake(children);
  const db = args.database ? await benchSchema(args.database) : null;
  try {
    await singleRun(fakeUrl, db?.env ?? {});
  } finally {
    for (const c of children) c.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    await db?.drop();
  }
}

async function singleRun(fakeUrl: string, dbEnv: Record<string, string>): Promise<void> {
  const gw = await startGateway({ TAVILY_BASE_URL: fakeUrl, ...dbEnv });
  const token = await setUpGateway(gw.url);

  const direct: Target = { name: 'direct', origin: fakeUrl, headers: { authorization: `Bearer ${KEYS[0]}`, 'content-type': 'application/json' } };
  const mp = spawn(process.execPath, ['-e', MINIMAL_PROXY], { env: { PATH: process.env.PATH ?? '', UPSTREAM: fakeUrl, KEY: `Bearer ${KEYS[0]}` }, stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(mp);
  let mpOut = '';
  mp.stdout!.on('data', (d) => (mpOut += d));
  const minimal: Target = { name: 'minimal Node proxy', origin: await waitFor(() => mpOut, /listening at (\S+)/, 'minimal proxy'), headers: direct.headers };
  const gateway: Target = { name: 'gateway', origin: gw.url, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } };
  // The same gateway and search with a token that has a monthly budget: each request reserves
  // its most possible cost before it is forwarded and settles it after (a billion credits: never refused).
  const budgetedToken = (await (await fetch(`${gw.url}/api/v1/admin/tokens`, { method: 'POST', headers: adminHeaders, body: JSON.stringify({ name: 'bench budgeted', monthly_budget: 1_000_000_000 }) })).json()) as { token: string };
  const budgeted: Target = { name: 'gateway, budgeted token', origin: gw.url, headers: { authorization: `Bearer ${budgetedToken.token}`, 'content-type': 'application/json' } };
  // What counting costs: two more gateways, alike but for METRICS_ENABLED, serving only the
  // same REST search in the same rounds. (The first gateway also serves MCP, which leaves it
  // more state: compared with it, even two gateways without metrics differ by ~10%.)
  // SQLite only: a second instance on one PostgreSQL schema would also hear the first's changes.
  const pair = async (on: boolean): Promise<{ target: Target; pid: number } | null> => {
    if (dbEnv.DATABASE_URL) return null;
    const g = await startGateway({ TAVILY_BASE_URL: fakeUrl, METRICS_ENABLED: on ? 'true' : 'false' });
    const tok = await setUpGateway(g.url);
    return { target: { name: `gateway, metrics ${on ? 'on' : 'off'}`, origin: g.url, headers: { authorization: `Bearer ${tok}`, 'content-type': 'application/json' } }, pid: g.pid };
  };
  // The answer cache: a token with cache_ttl_s, sending the same search (every answer after the
  // first is a hit), and the same token asking for Tavily every time (X-Tavily-Pool-Cache:
  // bypass: the miss path, the answer stored each time).
  const cachedToken = (await (await fetch(`${gw.url}/api/v1/admin/tokens`, { method: 'POST', headers: adminHeaders, body: JSON.stringify({ name: 'bench cached', cache_ttl_s: 3600 }) })).json()) as { token: string };
  const cacheHit: Target = { name: 'gateway, cache hit', origin: gw.url, headers: { authorization: `Bearer ${cachedToken.token}`, 'content-type': 'application/json' } };
  const cacheMiss: Target = { name: 'gateway, cache miss', origin: gw.url, headers: { ...cacheHit.headers, 'x-tavily-pool-cache': 'bypass' } };
  const metricsOn = await pair(true);
  const metricsOff = await pair(false);
  // The same search as an MCP tools/call (stateless: no initialize needed), answered as an event stream.
  const mcp: Target = {
    name: 'gateway MCP',
    origin: gw.url,
    path: '/mcp',
    headers: { ...gateway.headers, accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-06-18' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'tavily_search', arguments: { query: 'benchmark query', max_results: 5 } } }),
  };

  console.log(`# proxy benchmark: fake Tavily at 0 ms, gateway on ${dbEnv.DATABASE_URL ? 'PostgreSQL' : 'SQLite'}, ${CONNECTIONS} connections, ${DURATION_MS / 1000} s per run, Node ${process.version}, ${os.cpus().length} cores`);
  console.log(`# the fake, the gateway and the load generator each run in their own process; saturation load from ${HAVE_WRK ? 'wrk' : 'this process (install wrk for a lighter generator)'}\n`);

  // CPU time per request of the proxying process, from /proc: less noisy than throughput on a
  // shared machine, and what the gateway's own work costs next to the minimal proxy's.
  const pids = new Map([
    [minimal.name, mp.pid!],
    [gateway.name, gw.pid],
    [budgeted.name, gw.pid],
    [mcp.name, gw.pid],
    [cacheHit.name, gw.pid],
    [cacheMiss.name, gw.pid],
    ...[metricsOn, metricsOff].flatMap((m) => (m ? [[m.target.name, m.pid] as const] : [])),
  ]);
  const cpu = new Map<string, { seconds: number; requests: number }>();
  const sat = await alternate([direct, minimal, gateway, budgeted, mcp, cacheHit, cacheMiss, ...[metricsOn, metricsOff].flatMap((m) => (m ? [m.target] : []))], async (t, ms) => {
    const pid = pids.get(t.name);
    const c0 = pid ? cpuSeconds(pid) : 0;
    const r = await saturate(t, ms);
    if (pid) {
      const c = cpu.get(t.name) ?? { seconds: 0, requests: 0 };
      c.seconds += cpuSeconds(pid) - c0;
      c.requests += r.count;
      cpu.set(t.name, c);
    }
    return r;
  });
  const perRequest = (name: string) => (cpu.get(name)!.seconds / cpu.get(name)!.requests) * 1e6;
  const satDirect = sat.get(direct.name)!;
  const satMinimal = sat.get(minimal.name)!;
  const satGateway = sat.get(gateway.name)!;
  const satMcp = sat.get(mcp.name)!;
  const latD: number[] = [];
  const latG: number[] = [];
  const latM: number[] = [];
  let errD = 0;
  let errG = 0;
  let errM = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const d = await openLoop(direct, RATE, DURATION_MS / ROUNDS);
    const g = await openLoop(gateway, RATE, DURATION_MS / ROUNDS);
    const m = await openLoop(mcp, RATE, DURATION_MS / ROUNDS);
    latD.push(...d.samples);
    latG.push(...g.samples);
    latM.push(...m.samples);
    errD += d.errors;
    errG += g.errors;
    errM += m.errors;
  }
  const rateDirect = summarise(latD, errD, DURATION_MS);
  const rateGateway = summarise(latG, errG, DURATION_MS);
  const rateMcp = summarise(latM, errM, DURATION_MS);

  console.log('| load | path | requests/s | p50 | p99 | errors | CPU per request |');
  console.log('|---|---|---:|---:|---:|---:|---:|');
  for (const [load, name, r, cpuOf] of [
    [`saturation (${CONNECTIONS} connections)`, 'direct', satDirect, null],
    [`saturation (${CONNECTIONS} connections)`, 'minimal Node proxy (floor)', satMinimal, minimal.name],
    [`saturation (${CONNECTIONS} connections)`, 'gateway (REST)', satGateway, gateway.name],
    [`saturation (${CONNECTIONS} connections)`, 'gateway (REST, token with a budget)', sat.get(budgeted.name)!, budgeted.name],
    [`saturation (${CONNECTIONS} connections)`, 'gateway (MCP tools/call)', satMcp, mcp.name],
    [`saturation (${CONNECTIONS} connections)`, 'gateway (REST, cache hit)', sat.get(cacheHit.name)!, cacheHit.name],
    [`saturation (${CONNECTIONS} connections)`, 'gateway (REST, cache miss: Tavily asked, answer stored)', sat.get(cacheMiss.name)!, cacheMiss.name],
    ...[metricsOn, metricsOff].flatMap((m) => (m ? [[`saturation (${CONNECTIONS} connections)`, `${m.target.name} (REST only)`, sat.get(m.target.name)!, m.target.name] as const] : [])),
    [`${RATE} requests/s`, 'direct', rateDirect, null],
    [`${RATE} requests/s`, 'gateway (REST)', rateGateway, null],
    [`${RATE} requests/s`, 'gateway (MCP tools/call)', rateMcp, null],
  ] as ReadonlyArray<readonly [string, string, Result, string | null]>) {
    console.log(`| ${load} | ${name} | ${Math.round(r.rps)} | ${f(r.p50)} | ${f(r.p99)} | ${r.errors} | ${cpuOf ? `${Math.round(perRequest(cpuOf))} µs` : '–'} |`);
  }
  console.log('');
  console.log(`- gateway CPU per request: ${(perRequest(gateway.name) / perRequest(minimal.name)).toFixed(2)}× the minimal Node proxy's (${Math.round(perRequest(gateway.name))} µs vs ${Math.round(perRequest(minimal.name))} µs)`);
  console.log(`- budget reservation: a token with a budget costs ${(perRequest(budgeted.name) / perRequest(gateway.name)).toFixed(3)}× the CPU per request of one without (${Math.round(perRequest(budgeted.name))} µs vs ${Math.round(perRequest(gateway.name))} µs); ${(perRequest(budgeted.name) / perRequest(minimal.name)).toFixed(2)}× the minimal proxy's`);
  console.log(`- answer cache: a hit costs ${Math.round(perRequest(cacheHit.name))} µs of CPU, ${(perRequest(cacheHit.name) / perRequest(gateway.name)).toFixed(2)}× a request without the cache; a miss ${Math.round(perRequest(cacheMiss.name))} µs, ${(perRequest(cacheMiss.name) / perRequest(gateway.name)).toFixed(2)}×; throughput of hits ${((sat.get(cacheHit.name)!.rps / satGateway.rps) * 100).toFixed(0)}% of the uncached path's`);
  if (metricsOn && metricsOff) {
    const on = metricsOn.target.name;
    const off = metricsOff.target.name;
    console.log(`- metrics: CPU per request with them on is ${(perRequest(on) / perRequest(off)).toFixed(2)}× a like gateway's with METRICS_ENABLED=false (${Math.round(perRequest(on))} µs vs ${Math.round(perRequest(off))} µs); throughput ${((sat.get(on)!.rps / sat.get(off)!.rps) * 100).toFixed(0)}% of it`);
  }
  console.log(`- gateway throughput at saturation: ${((satGateway.rps / satDirect.rps) * 100).toFixed(0)}% of direct (target ≥ 50%); a minimal Node proxy: ${((satMinimal.rps / satDirect.rps) * 100).toFixed(0)}%`);
  console.log(`- added latency at ${RATE} requests/s: p50 ${f(rateGateway.p50 - rateDirect.p50)} (target ≤ 1 ms), p99 ${f(rateGateway.p99 - rateDirect.p99)} (target ≤ 5 ms)`);
  console.log(`- MCP tools/call: ${((satMcp.rps / satGateway.rps) * 100).toFixed(0)}% of REST's throughput, CPU per request ${(perRequest(mcp.name) / perRequest(gateway.name)).toFixed(2)}× REST's (${Math.round(perRequest(mcp.name))} µs); added latency at ${RATE} requests/s p50 ${f(rateMcp.p50 - rateDirect.p50)}, p99 ${f(rateMcp.p99 - rateDirect.p99)}`);
  // The gateway accounted every request it served.
  console.log(`- request log: ${await loggedRequests(gw.url)} rows for ${satGateway.count + satMcp.count + rateGateway.count + rateMcp.count} measured requests (+ warm-up)`);
  if (process.env.GATEWAY_LOG_FILE) fs.writeFileSync(process.env.GATEWAY_LOG_FILE, gw.output());
}

/** One gateway, then several sharing one PostgreSQL, behind a round-robin load generator. */
async function clusterMode(): Promise<void> {
  const dbUrl = args.database ?? process.env.TEST_DATABASE_URL ?? process.env.DATABASE_URL;
  if (!dbUrl || !/^postgres(ql)?:\/\//.test(dbUrl)) {
    console.error('--instances needs PostgreSQL: pass --database postgres://… (or set TEST_DATABASE_URL)');
    process.exit(2);
  }
  const db = await benchSchema(dbUrl);
  try {
    const fakeUrl = await startFake(children);
    const env = { ...db.env, TAVILY_BASE_URL: fakeUrl, ENCRYPTION_KEY: randomBytes(32).toString('hex'), REFRESH_ON_START: 'false' };
    const gateways = [];
    for (let i = 0; i < INSTANCES; i++) gateways.push(await startGateway(env));
    const token = await setUpGateway(gateways[0]!.url);
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    // Every instance has the keys and the token (from the first one's notice) before the run.
    for (const g of gateways) {
      for (let i = 0; ; i++) {
        const r = await fetch(`${g.url}/search`, { method: 'POST', headers, body: BODY });
        if (r.status === 200) break;
        if (i > 200) throw new Error(`instance ${g.url} never served: ${r.status} ${await r.text()}`);
        await new Promise((res) => setTimeout(res, 10));
      }
    }
    const direct = { name: 'direct', targets: [{ name: 'direct', origin: fakeUrl, headers: { authorization: `Bearer ${KEYS[0]}`, 'content-type': 'application/json' } }] };
    const one = { name: '1 instance', targets: [{ name: 'a', origin: gateways[0]!.url, headers }] };
    const many = { name: `${INSTANCES} instances`, targets: gateways.map((g, i) => ({ name: String(i), origin: g.url, headers })) };

    console.log(`# multi-instance benchmark: fake Tavily at 0 ms, PostgreSQL, ${CONNECTIONS} connections, ${DURATION_MS / 1000} s per path, Node ${process.version}, ${os.cpus().length} cores`);
    console.log(
      HAVE_WRK
        ? '# load from wrk, 2 threads dealt round-robin to the instances; every path uses the same generator\n'
        : '# load from a round-robin generator in this process (each request to the next instance); every path uses the same generator\n',
    );
    // CPU time per path: of the gateway processes, and of the whole machine.
    const cpu = new Map<string, { gateways: number; busy: number; total: number; requests: number }>();
    const gwPids = gateways.map((g) => g.pid);
    const res = await alternate([direct, one, many], async (p, ms) => {
      const g0 = gwPids.reduce((a, pid) => a + cpuSeconds(pid), 0);
      const m0 = machineCpu();
      // Every path runs with the same two wrk threads and connections, whatever its number of instances.
      const r = HAVE_WRK ? wrkRun(p.targets, ms, 2) : await roundRobinLoop(p.targets, ms);
      const m1 = machineCpu();
      const c = cpu.get(p.name) ?? { gateways: 0, busy: 0, total: 0, requests: 0 };
      c.gateways += gwPids.reduce((a, pid) => a + cpuSeconds(pid), 0) - g0;
      c.busy += m1.busy - m0.busy;
      c.total += m1.total - m0.total;
      c.requests += r.count; // warm-up included, as in the CPU time
      cpu.set(p.name, c);
      return r;
    });
    const base = res.get(one.name)!;
    console.log('| path | requests/s | vs 1 instance | p50 | p99 | errors | gateway CPU per request | machine CPU busy |');
    console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
    for (const p of [direct, one, many]) {
      const r = res.get(p.name)!;
      const c = cpu.get(p.name)!;
      const perReq = p === direct ? '–' : `${Math.round((c.gateways / c.requests) * 1e6)} µs`;
      console.log(`| ${p.name} | ${Math.round(r.rps)} | ${(r.rps / base.rps).toFixed(2)}× | ${f(r.p50)} | ${f(r.p99)} | ${r.errors} | ${perReq} | ${Math.round((c.busy / c.total) * 100)}% |`);
    }
    const served = res.get(one.name)!.count + res.get(many.name)!.count;
    // Asking each instance flushes its pending rows; the last answer counts them all.
    let logged = 0;
    for (const g of gateways) logged = await loggedRequests(g.url);
    console.log(`\n- request log (shared database): ${logged} rows for ${served} measured requests (+ warm-up)`);
  } finally {
    for (const c of children) c.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    await db.drop();
  }
}

try {
  if (INSTANCES > 1) await clusterMode();
  else await singleMode();
} finally {
  for (const c of children) c.kill('SIGTERM');
}
process.exit(0);

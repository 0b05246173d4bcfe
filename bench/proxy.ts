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
 */
import { type ChildProcess, execFileSync, fork, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';

const { values: args } = parseArgs({
  options: {
    connections: { type: 'string', default: '32' },
    duration: { type: 'string', default: '10' },
    rate: { type: 'string', default: '1000' },
  },
});
const CONNECTIONS = Number(args.connections);
const DURATION_MS = Number(args.duration) * 1000;
const RATE = Number(args.rate);

interface Target {
  name: string;
  origin: string;
  headers: Record<string, string>;
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
  const res = await pool.request({ method: 'POST', path: '/search', headers: t.headers, body: BODY });
  await res.body.dump();
  return res.statusCode === 200;
}

/** As fast as the target answers, over `connections` connections. */
async function closedLoop(t: Target, durationMs: number): Promise<Result> {
  const pool = new Pool(t.origin, { connections: CONNECTIONS });
  const lat: number[] = [];
  let errors = 0;
  const start = performance.now();
  const end = start + durationMs;
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (performance.now() < end) {
        const t0 = process.hrtime.bigint();
        const ok = await once(pool, t).catch(() => false);
        if (ok) lat.push(Number(process.hrtime.bigint() - t0));
        else errors++;
      }
    }),
  );
  const elapsed = performance.now() - start;
  await pool.close();
  return summarise(lat, errors, elapsed);
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

/** Saturation with wrk: a closed loop in C, so the load generator takes little CPU. */
function wrkLoop(t: Target, durationMs: number): Result {
  const lua = path.join(os.tmpdir(), 'tavily-pool-bench-post.lua');
  fs.writeFileSync(
    lua,
    `wrk.method = "POST"\nwrk.body = '${BODY}'\n` +
      Object.entries(t.headers).map(([k, v]) => `wrk.headers["${k}"] = "${v}"`).join('\n') +
      `\ndone = function(summary, latency, requests)\n  io.write(string.format("RESULT %d %d %f %f %f\\n", summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, summary.duration, latency:percentile(50), latency:percentile(99)))\nend\n`,
  );
  const out = execFileSync('wrk', ['-t1', `-c${CONNECTIONS}`, `-d${Math.round(durationMs / 1000)}s`, '-s', lua, `${t.origin}/search`], { encoding: 'utf8' });
  const m = /RESULT (\d+) (\d+) ([\d.]+) ([\d.]+) ([\d.]+)/.exec(out);
  if (!m) throw new Error(`wrk printed no result:\n${out}`);
  const [, n, errors, durUs, p50Us, p99Us] = m.map(Number) as number[];
  return { rps: n! / (durUs! / 1e6), p50: p50Us! / 1000, p99: p99Us! / 1000, errors: errors!, count: n! };
}

const saturate = (t: Target, durationMs: number): Promise<Result> => (HAVE_WRK ? Promise.resolve(wrkLoop(t, durationMs)) : closedLoop(t, durationMs));

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

async function waitFor(out: () => string, re: RegExp, what: string): Promise<string> {
  for (let i = 0; i < 600; i++) {
    const m = re.exec(out());
    if (m) return m[1]!;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} did not start:\n${out()}`);
}

const children: ChildProcess[] = [];
try {
  // The fake upstream, alone in its process.
  const fake = fork(path.resolve('test/support/fake-tavily.ts'), [], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, LATENCY_MS: '0', PORT: '0' },
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  });
  children.push(fake);
  let fakeOut = '';
  fake.stdout!.on('data', (d) => (fakeOut += d));
  const fakeUrl = await waitFor(() => fakeOut, /"url":"([^"]+)"/, 'fake Tavily');

  // The gateway: the compiled server, embedded SQLite.
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tavily-pool-bench-proxy-'));
  const admin = 'bench-proxy-admin-token';
  // GATEWAY_NODE_ARGS, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof", profiles the gateway.
  const nodeArgs = (process.env.GATEWAY_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const gw = spawn(process.execPath, [...nodeArgs, path.resolve('dist/src/server.js')], {
    env: { PATH: process.env.PATH ?? '', DATA_DIR: dataDir, HOST: '127.0.0.1', PORT: '0', ADMIN_TOKEN: admin, TAVILY_BASE_URL: fakeUrl, LOG_LEVEL: process.env.GATEWAY_LOG_LEVEL ?? 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(gw);
  let gwOut = '';
  gw.stdout!.on('data', (d) => (gwOut += d));
  gw.stderr!.on('data', (d) => (gwOut += d));
  // Gateway routes log only warnings: at info level the server prints its address and little else.
  const gwUrl = await waitFor(() => gwOut, /Server listening at (http:\/\/127\.0\.0\.1:\d+)/, 'gateway');
  const ah = { authorization: `Bearer ${admin}`, 'content-type': 'application/json' };
  const keys = Array.from({ length: 20 }, (_, i) => `tvly-dev-benchproxy${String(i).padStart(4, '0')}`);
  await fetch(`${gwUrl}/api/v1/admin/tavily-keys`, { method: 'POST', headers: ah, body: JSON.stringify({ keys }) });
  // Not refreshed: an unknown quota is not spent down, so the pool never runs dry mid-run
  // (refreshed free keys would hold only ~10,000 credits between them).
  const tok = (await (await fetch(`${gwUrl}/api/v1/admin/tokens`, { method: 'POST', headers: ah, body: JSON.stringify({ name: 'bench' }) })).json()) as { token: string };

  const direct: Target = { name: 'direct', origin: fakeUrl, headers: { authorization: `Bearer ${keys[0]}`, 'content-type': 'application/json' } };
  const mp = spawn(process.execPath, ['-e', MINIMAL_PROXY], { env: { PATH: process.env.PATH ?? '', UPSTREAM: fakeUrl, KEY: `Bearer ${keys[0]}` }, stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(mp);
  let mpOut = '';
  mp.stdout!.on('data', (d) => (mpOut += d));
  const minimal: Target = { name: 'minimal Node proxy', origin: await waitFor(() => mpOut, /listening at (\S+)/, 'minimal proxy'), headers: direct.headers };
  const gateway: Target = { name: 'gateway', origin: gwUrl, headers: { authorization: `Bearer ${tok.token}`, 'content-type': 'application/json' } };

  console.log(`# proxy benchmark: fake Tavily at 0 ms, ${CONNECTIONS} connections, ${DURATION_MS / 1000} s per run, Node ${process.version}, ${os.cpus().length} cores`);
  console.log(`# the fake, the gateway and the load generator each run in their own process; saturation load from ${HAVE_WRK ? 'wrk' : 'this process (install wrk for a lighter generator)'}\n`);
  // Warm every path (JIT, connections) before measuring.
  for (const t of [direct, minimal, gateway]) await saturate(t, 2000);

  // Each measurement runs in ROUNDS short rounds that alternate between the paths, so that a
  // burst of noise on this shared machine falls on all of them alike; samples are pooled.
  const ROUNDS = 5;
  const sat = new Map<string, Result[]>();
  for (let r = 0; r < ROUNDS; r++) {
    for (const t of [direct, minimal, gateway]) {
      const list = sat.get(t.name) ?? [];
      list.push(await saturate(t, DURATION_MS / ROUNDS));
      sat.set(t.name, list);
    }
  }
  const pooled = (rs: Result[]): Result => ({
    rps: rs.reduce((a, r) => a + r.rps, 0) / rs.length,
    p50: [...rs.map((r) => r.p50)].sort((a, b) => a - b)[Math.floor(rs.length / 2)]!,
    p99: [...rs.map((r) => r.p99)].sort((a, b) => a - b)[Math.floor(rs.length / 2)]!,
    errors: rs.reduce((a, r) => a + r.errors, 0),
    count: rs.reduce((a, r) => a + r.count, 0),
  });
  const satDirect = pooled(sat.get(direct.name)!);
  const satMinimal = pooled(sat.get(minimal.name)!);
  const satGateway = pooled(sat.get(gateway.name)!);
  const latD: number[] = [];
  const latG: number[] = [];
  let errD = 0;
  let errG = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const d = await openLoop(direct, RATE, DURATION_MS / ROUNDS);
    const g = await openLoop(gateway, RATE, DURATION_MS / ROUNDS);
    latD.push(...d.samples);
    latG.push(...g.samples);
    errD += d.errors;
    errG += g.errors;
  }
  const rateDirect = summarise(latD, errD, DURATION_MS);
  const rateGateway = summarise(latG, errG, DURATION_MS);

  const f = (ms: number) => `${ms.toFixed(2)} ms`;
  console.log('| load | path | requests/s | p50 | p99 | errors |');
  console.log('|---|---|---:|---:|---:|---:|');
  for (const [load, name, r] of [
    [`saturation (${CONNECTIONS} connections)`, 'direct', satDirect],
    [`saturation (${CONNECTIONS} connections)`, 'minimal Node proxy (floor)', satMinimal],
    [`saturation (${CONNECTIONS} connections)`, 'gateway', satGateway],
    [`${RATE} requests/s`, 'direct', rateDirect],
    [`${RATE} requests/s`, 'gateway', rateGateway],
  ] as const) {
    console.log(`| ${load} | ${name} | ${Math.round(r.rps)} | ${f(r.p50)} | ${f(r.p99)} | ${r.errors} |`);
  }
  console.log('');
  console.log(`- gateway throughput at saturation: ${((satGateway.rps / satDirect.rps) * 100).toFixed(0)}% of direct (target ≥ 50%); a minimal Node proxy: ${((satMinimal.rps / satDirect.rps) * 100).toFixed(0)}%`);
  console.log(`- added latency at ${RATE} requests/s: p50 ${f(rateGateway.p50 - rateDirect.p50)} (target ≤ 1 ms), p99 ${f(rateGateway.p99 - rateDirect.p99)} (target ≤ 5 ms)`);

  // The gateway accounted every request it served.
  const logs = (await (await fetch(`${gwUrl}/api/v1/admin/stats`, { headers: ah })).json()) as { by_day: { requests: number }[] };
  const served = satGateway.count + rateGateway.count;
  const logged = logs.by_day.reduce((s, d) => s + d.requests, 0);
  console.log(`- request log: ${logged} rows for ${served} measured requests (+ warm-up)`);
  if (process.env.GATEWAY_LOG_FILE) fs.writeFileSync(process.env.GATEWAY_LOG_FILE, gwOut);
} finally {
  for (const c of children) c.kill('SIGTERM');
}
process.exit(0);


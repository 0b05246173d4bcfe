/** Helpers shared by the benchmarks that run the fake upstream and the gateway as processes. */
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';

/** Waits until a process's output matches `re` (its first group is returned). */
export async function waitFor(out: () => string, re: RegExp, what: string): Promise<string> {
  for (let i = 0; i < 600; i++) {
    const m = re.exec(out());
    if (m) return m[1]!;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} did not start:\n${out()}`);
}

/** The fake Tavily (at 0 ms unless said), alone in its process (added to `children`); resolves to its URL. */
export async function startFake(children: ChildProcess[], latencyMs = 0): Promise<string> {
  const fake = fork(path.resolve('test/support/fake-tavily.ts'), [], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, LATENCY_MS: String(latencyMs), PORT: '0' },
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  });
  children.push(fake);
  let out = '';
  fake.stdout!.on('data', (d) => (out += d));
  return waitFor(() => out, /"url":"([^"]+)"/, 'fake Tavily');
}

/** A gateway: the compiled server (`dist/src/server.js`) in a process of its own (added to `children`). */
export async function startGateway(children: ChildProcess[], env: Record<string, string>): Promise<{ url: string; pid: number; process: ChildProcess; output: () => string }> {
  // GATEWAY_NODE_ARGS, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof", profiles the gateway.
  const nodeArgs = (process.env.GATEWAY_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const gw = spawn(process.execPath, [...nodeArgs, path.resolve('dist/src/server.js')], {
    env: {
      PATH: process.env.PATH ?? '',
      DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'tavily-pool-bench-')),
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: process.env.GATEWAY_LOG_LEVEL ?? 'info',
      // The keys stay unrefreshed (an unknown quota is not spent down): the pool never runs dry.
      VALIDATE_ON_IMPORT: 'false',
      // KEY_STRATEGY=most-remaining npm run bench:proxy compares the key strategies.
      ...(process.env.KEY_STRATEGY ? { KEY_STRATEGY: process.env.KEY_STRATEGY } : {}),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(gw);
  let out = '';
  gw.stdout!.on('data', (d) => (out += d));
  gw.stderr!.on('data', (d) => (out += d));
  // Gateway routes log only warnings: at info level the server prints its address and little else.
  const url = await waitFor(() => out, /Server listening at (http:\/\/127\.0\.0\.1:\d+)/, 'gateway');
  return { url, pid: gw.pid!, process: gw, output: () => out };
}

/** A schema of its own for this run in the given PostgreSQL database, dropped by `drop()`. */
export async function benchSchema(dbUrl: string): Promise<{ env: Record<string, string>; drop: () => Promise<void> }> {
  const schema = `bench_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: dbUrl });
  await admin.connect();
  await admin.query(`create schema ${schema}`);
  return {
    // node-postgres reads PGOPTIONS: every connection of the gateway works in the schema.
    env: { DATABASE_URL: dbUrl, PGOPTIONS: `-c search_path=${schema}` },
    async drop() {
      await admin.query(`drop schema if exists ${schema} cascade`).catch(() => {});
      await admin.end();
    },
  };
}

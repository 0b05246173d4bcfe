import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import SqliteDatabase from 'better-sqlite3';
import pg from 'pg';
import { Pool } from 'undici';
import { generateEncryptionKey } from '../../src/crypto.js';
import { dialects, tempDir } from '../support/db.js';
import { FakeTavily } from '../support/fake-tavily.js';
import { type Server, startServer as startWith } from '../support/server.js';

const ADMIN = 'shutdown-test-admin-token';
const startServer = (env: Record<string, string>) => startWith({ ADMIN_TOKEN: ADMIN, ...env });
const postgres = dialects.find((d) => d.name === 'postgres')!;

const admin = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };

async function setUp(url: string, keyPrefix: string): Promise<string> {
  const keys = Array.from({ length: 5 }, (_, i) => `tvly-dev-${keyPrefix}0000${i}`);
  assert.equal((await fetch(`${url}/api/v1/admin/tavily-keys`, { method: 'POST', headers: admin, body: JSON.stringify({ keys }) })).status, 201);
  const tok = (await (await fetch(`${url}/api/v1/admin/tokens`, { method: 'POST', headers: admin, body: JSON.stringify({ name: 'load' }) })).json()) as { token: string };
  return tok.token;
}

/**
 * Searches through one server with 16 connections until stopped or the server goes away;
 * keeps the request_id of every request that completed with 200.
 */
function load(url: string, token: string) {
  const client = new Pool(url, { connections: 16 });
  const completed: string[] = [];
  const statuses = new Map<number, number>();
  let firstError: unknown = null;
  let stop = false;
  const worker = async () => {
    while (!stop) {
      try {
        const res = await client.request({
          method: 'POST',
          path: '/search',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ query: 'load' }),
        });
        const body = (await res.body.json()) as { request_id?: string };
        statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
        if (res.statusCode === 200 && body.request_id) completed.push(body.request_id);
      } catch (err) {
        firstError ??= err;
        stop = true; // the server went away
      }
    }
  };
  const workers = Array.from({ length: 16 }, worker);
  return {
    completed,
    get stopped() {
      return stop;
    },
    /** Waits until `n` requests have completed (or the load stopped). */
    async reach(n: number) {
      for (let i = 0; i < 1500 && completed.length < n && !stop; i++) await new Promise((r) => setTimeout(r, 10));
      assert.ok(completed.length >= n, `load did not build up: ${completed.length} completed, statuses ${JSON.stringify([...statuses])}, error ${String(firstError)}`);
    },
    async end() {
      stop = true;
      await Promise.all(workers);
      await client.close();
    },
  };
}

test('SIGTERM under load: every request that completed has its log row', async () => {
  const fake = await FakeTavily.start({ latencyMs: 5 });
  const dataDir = tempDir();
  let server: Server | undefined;
  try {
    server = await startServer({ DATA_DIR: dataDir, TAVILY_BASE_URL: fake.url });
    const l = load(server.url, await setUp(server.url, 'sigterm'));
    await l.reach(300);
    server.child.kill('SIGTERM');
    assert.equal(await server.exited, 0, server.output().split('\n').slice(-6).join('\n'));
    await l.end();

    const db = new SqliteDatabase(path.join(dataDir, 'tavily-pool.db'), { readonly: true });
    const logged = new Set((db.prepare('select request_id from request_logs').all() as { request_id: string }[]).map((r) => r.request_id));
    db.close();
    const missing = l.completed.filter((id) => !logged.has(id));
    assert.deepEqual(missing, [], `${missing.length} of ${l.completed.length} completed requests have no log row`);
  } finally {
    if (server?.child.exitCode === null) server.child.kill('SIGKILL');
    await fake.close();
  }
});

if (postgres.skip) test('two instances on PostgreSQL, one stopped with SIGTERM mid-load', { skip: postgres.skip }, () => {});
else
  test('two instances on PostgreSQL, one stopped with SIGTERM mid-load: the other serves on, and no completed request loses its log row', async () => {
    const fake = await FakeTavily.start({ latencyMs: 5 });
    const db = await postgres.create();
    const env = {
      DATABASE_URL: process.env.TEST_DATABASE_URL!,
      // node-postgres reads PGOPTIONS: both processes work in this test's schema.
      PGOPTIONS: `-c search_path=${db.open.pgSearchPath}`,
      ENCRYPTION_KEY: generateEncryptionKey(),
      TAVILY_BASE_URL: fake.url,
      REFRESH_ON_START: 'false',
    };
    const servers: Server[] = [];
    try {
      servers.push(await startServer({ ...env, DATA_DIR: tempDir() }));
      servers.push(await startServer({ ...env, DATA_DIR: tempDir() }));
      const [a, b] = servers as [Server, Server];
      const token = await setUp(a.url, 'pgsigterm');
      // B learns the keys and the token from A's notice.
      for (let i = 0; i < 200; i++) {
        const r = await fetch(`${b.url}/search`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{"query":"ready"}' });
        if (r.status === 200) break;
        await new Promise((res) => setTimeout(res, 10));
      }
      const la = load(a.url, token);
      const lb = load(b.url, token);
      await Promise.all([la.reach(300), lb.reach(300)]);
      a.child.kill('SIGTERM');
      assert.equal(await a.exited, 0, a.output().split('\n').slice(-6).join('\n'));
      await la.end();
      const servedBefore = lb.completed.length;
      await lb.reach(servedBefore + 200);
      assert.equal(lb.stopped, false, 'B kept serving while A stopped');
      b.child.kill('SIGTERM');
      assert.equal(await b.exited, 0, b.output().split('\n').slice(-6).join('\n'));
      await lb.end();

      const c = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL, options: `-c search_path=${db.open.pgSearchPath}` });
      await c.connect();
      const { rows } = await c.query<{ request_id: string }>("select request_id from request_logs where endpoint = 'search'");
      const sum = await c.query<{ n: string }>("select sum(credits) as n from request_logs where endpoint = 'search'");
      await c.end();
      const logged = new Set(rows.map((r) => r.request_id));
      const completed = [...la.completed, ...lb.completed];
      const missing = completed.filter((id) => !logged.has(id));
      assert.deepEqual(missing, [], `${missing.length} of ${completed.length} completed requests have no log row`);
      assert.equal(Number(sum.rows[0]!.n), fake.totalCredits, 'the log holds every credit Tavily billed');
    } finally {
      for (const s of servers) if (s.child.exitCode === null) s.child.kill('SIGKILL');
      await fake.close();
      await db.cleanup();
    }
  });

test('SIGTERM with request-log rows the database will not take: exit code 1, and the log says how many', async () => {
  const fake = await FakeTavily.start();
  const dataDir = tempDir();
  let server: Server | undefined;
  try {
    server = await startServer({ DATA_DIR: dataDir, TAVILY_BASE_URL: fake.url, REFRESH_ON_START: 'false' });
    const token = await setUp(server.url, 'unwritten');
    // The request log's table disappears from under the server (an operator's mistake, a
    // broken restore): every flush fails, and not because of the rows' data.
    const db = new SqliteDatabase(path.join(dataDir, 'tavily-pool.db'));
    db.exec('alter table request_logs rename to request_logs_elsewhere');
    db.close();
    for (let i = 0; i < 5; i++) {
      const r = await fetch(`${server.url}/search`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{"query":"lost"}' });
      assert.equal(r.status, 200);
    }
    server.child.kill('SIGTERM');
    assert.equal(await server.exited, 1, server.output().split('\n').slice(-6).join('\n'));
    assert.match(server.output(), /"unwritten_rows":5,.*exiting with request-log rows unwritten/);
  } finally {
    if (server?.child.exitCode === null) server.child.kill('SIGKILL');
    await fake.close();
  }
});

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import SqliteDatabase from 'better-sqlite3';
import { Pool } from 'undici';
import { tempDir } from '../support/db.js';
import { FakeTavily } from '../support/fake-tavily.js';

const ADMIN = 'shutdown-test-admin-token';

test('SIGTERM under load: every request that completed has its log row', async () => {
  const fake = await FakeTavily.start({ latencyMs: 5 });
  const dataDir = tempDir();
  const child = spawn(process.execPath, ['--import', 'tsx', path.resolve('src/server.ts')], {
    env: { PATH: process.env.PATH ?? '', DATA_DIR: dataDir, HOST: '127.0.0.1', PORT: '0', ADMIN_TOKEN: ADMIN, TAVILY_BASE_URL: fake.url, LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  try {
    let url = '';
    for (let i = 0; i < 300 && !url; i++) {
      url = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1] ?? '';
      if (!url) await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(url, `server did not start:\n${out}`);
    const admin = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };
    const keys = Array.from({ length: 5 }, (_, i) => `tvly-dev-sigterm0000${i}`);
    assert.equal((await fetch(`${url}/api/v1/admin/tavily-keys`, { method: 'POST', headers: admin, body: JSON.stringify({ keys }) })).status, 201);
    const tok = await (await fetch(`${url}/api/v1/admin/tokens`, { method: 'POST', headers: admin, body: JSON.stringify({ name: 'load' }) })).json() as { token: string };

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
            headers: { authorization: `Bearer ${tok.token}`, 'content-type': 'application/json' },
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
    // Load for a moment, then stop the server in the middle of it.
    for (let i = 0; i < 1000 && completed.length < 300 && !stop; i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(completed.length >= 300, `load did not build up: ${completed.length} completed, statuses ${JSON.stringify([...statuses])}, error ${String(firstError)}`);
    child.kill('SIGTERM');
    assert.equal(await exited, 0, out.split("\n").slice(-6).join("\n"));
    stop = true;
    await Promise.all(workers);
    await client.close();

    const db = new SqliteDatabase(path.join(dataDir, 'tavily-pool.db'), { readonly: true });
    const logged = new Set((db.prepare('select request_id from request_logs').all() as { request_id: string }[]).map((r) => r.request_id));
    db.close();
    assert.ok(completed.length >= 300);
    const missing = completed.filter((id) => !logged.has(id));
    assert.deepEqual(missing, [], `${missing.length} of ${completed.length} completed requests have no log row`);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await fake.close();
  }
});

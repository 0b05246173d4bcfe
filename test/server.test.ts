import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { tempDir } from './support/db.js';
import { entry } from './support/entry.js';
import { until } from './support/receiver.js';


interface Run {
  child: ChildProcess;
  out: () => string;
  exited: Promise<number | null>;
}

function run(env: Record<string, string>): Run {
  const child = spawn(process.execPath, entry('src/server.ts'), {
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  child.stdout!.on('data', (d) => (text += d));
  child.stderr!.on('data', (d) => (text += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, out: () => text, exited };
}

async function listening(r: Run): Promise<string> {
  for (let i = 0; i < 300; i++) {
    const m = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(r.out());
    if (m) return m[1]!;
    if (r.child.exitCode !== null) break;
    await new Promise((res) => setTimeout(res, 50));
  }
  assert.fail(`server did not start:\n${r.out()}`);
}

describe('server process', () => {
  test('starts with no configuration, prints the generated admin token once, stops on SIGTERM', async () => {
    const dataDir = path.join(tempDir(), 'data');
    const first = run({ DATA_DIR: dataDir });
    const url = await listening(first);
    const token = fs.readFileSync(path.join(dataDir, 'admin-token'), 'utf8').trim();
    // The banner goes to stderr, the listen line to stdout: two pipes, no order between them.
    await until(() => first.out().includes(token), 'the generated token to be shown');
    // Where to go next: the dashboard's address and where the admin token is kept.
    await until(() => first.out().includes('dashboard:'), 'the dashboard’s address to be shown');
    assert.ok(first.out().includes(`dashboard:    ${url}/`), first.out());
    assert.ok(first.out().includes(`admin token:  ${path.join(dataDir, 'admin-token')}`));
    const ok = await fetch(`${url}/api/v1/admin/summary`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(ok.status, 200);
    assert.equal((await fetch(`${url}/readyz`)).status, 200);
    first.child.kill('SIGTERM');
    assert.equal(await first.exited, 0);
    assert.match(first.out(), /shutting down/);

    const second = run({ DATA_DIR: dataDir });
    await listening(second);
    assert.ok(!second.out().includes(token), 'shown once only');
    second.child.kill('SIGTERM');
    assert.equal(await second.exited, 0);
  });

  test('a bad variable stops the start with a message that names it', async () => {
    const r = run({ DATA_DIR: tempDir(), REFRESH_CONCURRENCY: 'lots' });
    assert.equal(await r.exited, 1);
    assert.match(r.out(), /invalid configuration: REFRESH_CONCURRENCY: expected a whole number, got "lots"/);
  });

  test('an unreachable PostgreSQL fails the start with a clear message', async () => {
    const r = run({ DATA_DIR: tempDir(), DATABASE_URL: 'postgres://postgres@127.0.0.1:9/none' });
    assert.equal(await r.exited, 1);
    assert.match(r.out(), /failed to start: .*(ECONNREFUSED|connect)/);
  });
});

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { tempDir } from '../support/db.js';
import { entry } from '../support/entry.js';
import { FakeTavily } from '../support/fake-tavily.js';
import { type Server, startServer } from '../support/server.js';


interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `tavily-pool …` as a user would, in a process of its own. One that has not ended after a
 * minute is killed and reported with code null, so that a hang fails the test rather than the run.
 */
function cli(args: string[], env: Record<string, string>, input?: string): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...entry('src/cli.ts'), ...args], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => {
      clearTimeout(killer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(input ?? '');
  });
}

/** A local HTTP server answering every request with `handler`, closed by the returned function. */
async function listen(handler: http.RequestListener): Promise<{ url: string; close: () => Promise<void> }> {
  const srv = http.createServer(handler);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => {
      srv.closeAllConnections();
      return new Promise((r) => srv.close(() => r()));
    },
  };
}

describe('the tavily-pool CLI against a running server', () => {
  let fake: FakeTavily;
  let server: Server;
  let dataDir: string;
  let env: Record<string, string>;
  let work: string;

  before(async () => {
    fake = await FakeTavily.start();
    dataDir = tempDir('tavily-pool-cli-');
    work = tempDir('tavily-pool-cli-work-');
    // No ADMIN_TOKEN: the server generates one in DATA_DIR, where the CLI finds it.
    server = await startServer({ DATA_DIR: dataDir, TAVILY_BASE_URL: fake.url, REFRESH_ON_START: 'false', VALIDATE_ON_IMPORT: 'false' });
    env = { TAVILY_POOL_URL: server.url, DATA_DIR: dataDir };
  });
  after(async () => {
    if (server?.child.exitCode === null) server.child.kill('SIGTERM');
    await server?.exited;
    await fake?.close();
  });

  test('keys add takes any text from a file or standard input, with a label and an account', async () => {
    const file = path.join(work, 'keys.txt');
    fs.writeFileSync(file, 'first: tvly-dev-clikey000001\nsecond tvly-dev-clikey000002, and noise\ntvly-dev-clikey000001\n');
    const r = await cli(['keys', 'add', file], env);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'added 2 keys; 1 duplicate; 0 rejected\n');
    const piped = await cli(['keys', 'add', '-', '--label', 'team b', '--account', 'b@example.com', '--json'], env, 'tvly-dev-clikey000003\ntvly-dev-clikey000002\n');
    assert.equal(piped.code, 0, piped.stderr);
    const j = JSON.parse(piped.stdout);
    assert.deepEqual([j.added, j.duplicates, j.accounts], [1, 1, 1]);
    const list = await cli(['keys', 'list', '--json'], env);
    const labelled = JSON.parse(list.stdout).items.find((k: { key_masked: string }) => k.key_masked.endsWith('0003'));
    assert.equal(labelled.label, 'team b');
    assert.equal(labelled.account_name, 'b@example.com');
  });

  test('keys list prints a table, filters as the API does, and says when it shows a part', async () => {
    const r = await cli(['keys', 'list'], env);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.match(lines[0]!, /^ID\s+KEY\s+STATUS\s+REMAINING\s+LABEL\s+ACCOUNT\s+REFRESHED$/);
    assert.equal(lines.length, 4);
    assert.match(r.stdout, /tvly-dev-…0003\s+active\s+–\s+team b\s+b@example\.com/);
    const one = await cli(['keys', 'list', '--limit', '1'], env);
    assert.equal(one.stdout.trim().split('\n').length, 2);
    assert.match(one.stderr, /1 of 3 keys shown/);
    const none = await cli(['keys', 'list', '--status', 'invalid', '--json'], env);
    assert.equal(JSON.parse(none.stdout).items.length, 0);
  });

  test('keys refresh on 1,000 keys at 200 ms shows its progress and ends with the right counts', async () => {
    const keys = Array.from({ length: 995 }, (_, i) => `tvly-dev-clirefresh${String(i).padStart(5, '0')}`);
    const bad = Array.from({ length: 5 }, (_, i) => `tvly-dev-invalid-clirf${i}`);
    const add = await cli(['keys', 'add', '-'], env, [...keys, ...bad].join('\n'));
    assert.equal(add.code, 0, add.stderr);
    fake.latencyMs = 200;
    try {
      const r = await cli(['keys', 'refresh'], env);
      assert.equal(r.code, 0, r.stderr);
      // Not a terminal: the bar is printed as lines now and then, and once at the end.
      const bars = r.stderr.split('\n').filter((l) => /^refresh \[.*\] \d+\/1003 keys/.test(l));
      assert.ok(bars.length >= 2, r.stderr);
      assert.ok(bars.some((l) => !/ 1003\/1003 /.test(l)), `a bar before the end: ${bars.join(' | ')}`);
      assert.match(bars.at(-1)!, / 1003\/1003 keys, 5 failed/);
      assert.match(r.stdout, /^refreshed 1003 keys in [\d.]+ s: 998 ok, 5 failed\n/);
      assert.equal(r.stdout.split('\n').filter((l) => /tvly-dev-invalid-…|401/.test(l)).length, 5, r.stdout);
    } finally {
      fake.latencyMs = 0;
    }
  });

  test('keys export prints every key in full; -o writes a private file', async () => {
    const r = await cli(['keys', 'export'], env);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 1003);
    assert.ok(lines.includes('tvly-dev-clikey000001'));
    const out = path.join(work, 'export.txt');
    const f = await cli(['keys', 'export', '--status', 'invalid', '-o', out], env);
    assert.equal(f.code, 0, f.stderr);
    assert.equal(fs.readFileSync(out, 'utf8').trim().split('\n').length, 5);
    assert.equal(fs.statSync(out).mode & 0o777, 0o600);
  });

  test('keys export -o over a readable file or a link to one leaves a private file, and never follows the link', async () => {
    const existing = path.join(work, 'shared.txt');
    fs.writeFileSync(existing, 'old content\n', { mode: 0o644 });
    fs.chmodSync(existing, 0o644);
    const over = await cli(['keys', 'export', '--status', 'invalid', '-o', existing], env);
    assert.equal(over.code, 0, over.stderr);
    assert.equal(fs.statSync(existing).mode & 0o777, 0o600, 'the file the keys are in is private, whatever mode it had');
    assert.equal(fs.readFileSync(existing, 'utf8').trim().split('\n').length, 5);

    const target = path.join(work, 'public.txt');
    fs.writeFileSync(target, 'not keys\n');
    fs.chmodSync(target, 0o644);
    const link = path.join(work, 'link.txt');
    fs.symlinkSync(target, link);
    const viaLink = await cli(['keys', 'export', '--status', 'invalid', '-o', link], env);
    assert.equal(viaLink.code, 0, viaLink.stderr);
    assert.equal(fs.lstatSync(link).isSymbolicLink(), false, 'the link is replaced by the file');
    assert.equal(fs.statSync(link).mode & 0o777, 0o600);
    assert.equal(fs.readFileSync(link, 'utf8').trim().split('\n').length, 5);
    assert.equal(fs.readFileSync(target, 'utf8'), 'not keys\n', 'the file the link pointed at is untouched');
    assert.deepEqual(fs.readdirSync(work).filter((f) => f.endsWith('.tmp')), [], 'no temporary file is left');
  });

  test('keys export from a server answering an HTML page fails and writes nothing', async () => {
    const page = await listen((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end('<!doctype html><html><body>Sign in to the proxy</body></html>');
    });
    try {
      const out = path.join(work, 'html-export.txt');
      const r = await cli(['keys', 'export', '-o', out, '--url', page.url], env);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /answered \/tavily-keys\/export with text\/html, not text\/plain as tavily-pool does: is --url the right server\? \(nothing was written\)/);
      assert.equal(fs.existsSync(out), false);
      const toStdout = await cli(['keys', 'export', '--url', page.url], env);
      assert.equal(toStdout.code, 1);
      assert.equal(toStdout.stdout, '');
    } finally {
      await page.close();
    }
  });

  test('keys disable, enable and delete by id; an unknown id fails with exit code 1', async () => {
    // The three added first (the list is newest first).
    const all = JSON.parse((await cli(['keys', 'list', '--json', '--limit', '0'], env)).stdout).items as Array<{ id: number }>;
    assert.equal(all.length, 1003, 'every page read');
    const ids = all.slice(-3).map((k) => k.id);
    const d = await cli(['keys', 'disable', String(ids[0]), String(ids[1])], env);
    assert.equal(d.stdout, 'disabled 2 keys\n');
    assert.equal(JSON.parse((await cli(['keys', 'list', '--json', '--status', 'disabled'], env)).stdout).items.length, 2);
    assert.equal((await cli(['keys', 'enable', String(ids[0])], env)).stdout, 'enabled 1 key\n');
    const gone = await cli(['keys', 'delete', String(ids[2]), '999999'], env);
    assert.equal(gone.code, 1);
    assert.equal(gone.stdout, 'deleted 1 key\n');
    assert.match(gone.stderr, /no key with id 999999/);
    const usage = await cli(['keys', 'delete', 'abc'], env);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /a key id must be a whole number/);
  });

  test('tokens create, list and revoke; the token works at the gateway until revoked', async () => {
    const c = await cli(['tokens', 'create', 'agents', '--budget', '100', '--rpm', '10', '--cache-ttl', '300'], env);
    assert.equal(c.code, 0, c.stderr);
    const token = c.stdout.trim();
    assert.match(token, /^tp_/);
    assert.match(c.stderr, /not shown again/);
    const search = () => fetch(`${server.url}/search`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ query: 'cli' }) });
    assert.equal((await search()).status, 200);
    const list = await cli(['tokens', 'list'], env);
    assert.match(list.stdout, /^ID\s+NAME\s+TOKEN\s+SPENT\s+BUDGET\s+RPM\s+CACHE/);
    assert.match(list.stdout, /agents\s+tp_\S+\s+1\s+100\s+10\s+300 s/);
    const id = JSON.parse((await cli(['tokens', 'list', '--json'], env)).stdout).items[0].id as number;
    const rv = await cli(['tokens', 'revoke', String(id)], env);
    assert.equal(rv.stdout, `revoked token ${id} “agents”\n`);
    assert.equal((await search()).status, 401);
    assert.match((await cli(['tokens', 'list', '--revoked'], env)).stdout, /agents/);
    const missing = await cli(['tokens', 'revoke', '424242'], env);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no client token with id 424242/);
  });

  test('status says what the pool holds and that the server is ready', async () => {
    // An account with no keys: counted among the accounts, not among those that can serve.
    const made = await fetch(`${server.url}/api/v1/admin/accounts`, {
      method: 'POST',
      headers: { authorization: `Bearer ${fs.readFileSync(path.join(dataDir, 'admin-token'), 'utf8').trim()}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'empty@example.com' }),
    });
    assert.equal(made.status, 201, await made.text());
    const r = await cli(['status'], env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^server +${server.url.replace(/[.]/g, '\\.')}: ok`, 'm'));
    // 1,003 added, one deleted, one still disabled.
    assert.match(r.stdout, /^keys +1002: 996 active, 1 disabled, 5 invalid, 0 exhausted$/m);
    assert.match(r.stdout, /^accounts +2: 1 with usable keys$/m);
    assert.match(r.stdout, /^last refresh +\d{4}-\d\d-\d\d \d\d:\d\d$/m);
    // The instances: on SQLite only the one that answered (marked *).
    assert.match(r.stdout, /^INSTANCE\s+HOST\s+VERSION\s+STARTED\s+STATE\s+LOG\s+KEYS$/m);
    assert.match(r.stdout, /^[0-9a-f]{12} \*\s+\S+\s+0\.1\.0\s+\d{4}-\d\d-\d\d \d\d:\d\d\s+ok\s+ok, \d+ pending\s+\d+$/m);
  });

  test('errors say what to do, with exit codes scripts can test', async () => {
    const wrong = await cli(['keys', 'list'], { ...env, ADMIN_TOKEN: 'not-the-admin-token' });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /refused the admin token from ADMIN_TOKEN: pass the server's ADMIN_TOKEN with --token/);
    const client = await cli(['keys', 'list', '--token', 'tp_0123456789abcdefghijklmnop'], env);
    assert.equal(client.code, 1);
    assert.match(client.stderr, /the token from --token is a client token \(tp_…\): it is for the gateway's search and MCP endpoints, not for administering the server/);
    const down = await cli(['status', '--url', 'http://127.0.0.1:9'], env);
    assert.equal(down.code, 1);
    assert.match(down.stderr, /no tavily-pool server answers at http:\/\/127\.0\.0\.1:9: start one with `tavily-pool serve`, or pass --url/);
    const noToken = await cli(['keys', 'list'], { TAVILY_POOL_URL: server.url, DATA_DIR: path.join(work, 'nothing-here') });
    assert.equal(noToken.code, 2);
    assert.match(noToken.stderr, /no admin token: pass --token, set ADMIN_TOKEN/);
    const badUrl = await cli(['status', '--url', 'ftp://x'], env);
    assert.equal(badUrl.code, 2);
    const unknown = await cli(['keys', 'lst'], env);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command 'lst'/);
    const noFile = await cli(['keys', 'add', path.join(work, 'missing.txt')], env);
    assert.equal(noFile.code, 2);
    assert.match(noFile.stderr, /cannot read .*missing\.txt: no such file/);
    const badStatus = await cli(['keys', 'list', '--status', 'gone'], env);
    assert.equal(badStatus.code, 2);
    const badTimeout = await cli(['status', '--timeout', 'soon'], env);
    assert.equal(badTimeout.code, 2);
    assert.match(badTimeout.stderr, /--timeout must be a number of seconds above 0/);
    const help = await cli(['keys', '--help'], env);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /refresh \[options\]/);
  });

  test('a server that takes the connection and never answers is given up after --timeout, saying so', async () => {
    const sockets = new Set<net.Socket>();
    const silent = net.createServer((s) => void sockets.add(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}`;
    try {
      const r = await cli(['status', '--url', url, '--timeout', '1'], env);
      assert.notEqual(r.code, null, 'the CLI ended by itself');
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`${url.replace(/[.]/g, '\\.')} took the connection but did not answer /(summary|accounts|readyz|instances) within 1 s: is --url a tavily-pool server`));
      const viaEnv = await cli(['keys', 'refresh'], { ...env, TAVILY_POOL_URL: url, TAVILY_POOL_TIMEOUT: '1' });
      assert.equal(viaEnv.code, 1, viaEnv.stderr);
      assert.match(viaEnv.stderr, /did not answer \/tavily-keys\/refresh-quota within 1 s/);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => silent.close(r));
    }
  });

  test('a server that begins an answer and stops is given up after --timeout, saying so', async () => {
    const stalling = await listen((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"keys":');
    });
    try {
      const r = await cli(['keys', 'list', '--url', stalling.url, '--timeout', '1'], env);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`${stalling.url.replace(/[.]/g, '\\.')} began to answer /tavily-keys\\?limit=100 but stopped for 1 s: is it well\\?`));
    } finally {
      await stalling.close();
    }
  });
});

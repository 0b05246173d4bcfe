import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { tempDir } from '../support/db.js';
import { compiledTests } from '../support/entry.js';

const ROOT = path.resolve('.');
const children: Array<ReturnType<typeof spawn>> = [];
after(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});

function run(cmd: string, args: string[], cwd: string, env: Record<string, string> = {}): { status: number | null; out: string } {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024 });
  return { status: r.status, out: `${r.stdout}\n${r.stderr}` };
}

test('the packed tarball installs in a clean directory, and its bin serves the gateway and the dashboard', { timeout: 15 * 60_000 }, async () => {
  // The build npm's prepack runs, without rebuilding a dashboard the other tests use. Under npm
  // test the sources were just compiled into .build/ with the same options: that output is the
  // build (dist/src), and compiling it again took ~10 s of CPU.
  if (compiledTests) {
    fs.rmSync(path.join(ROOT, 'dist', 'src'), { recursive: true, force: true });
    fs.rmSync(path.join(ROOT, 'dist', '.tsbuildinfo'), { force: true });
    fs.cpSync(path.join(ROOT, '.build', 'src'), path.join(ROOT, 'dist', 'src'), { recursive: true });
    fs.chmodSync(path.join(ROOT, 'dist', 'src', 'cli.js'), 0o755);
  } else assert.equal(run(process.execPath, ['scripts/build.mjs'], ROOT).status, 0);
  const packDir = tempDir('tavily-pool-pack-');
  const packed = run('npm', ['pack', '--ignore-scripts', '--pack-destination', packDir], ROOT);
  assert.equal(packed.status, 0, packed.out);
  const tarball = fs.readdirSync(packDir).find((f) => f.endsWith('.tgz'));
  assert.ok(tarball, packed.out);

  const listing = run('tar', ['-tzf', path.join(packDir, tarball)], packDir).out;
  assert.match(listing, /package\/dist\/src\/cli\.js/);
  assert.match(listing, /package\/web\/dist\/index\.html/);
  assert.doesNotMatch(listing, /package\/(src|test|bench)\//, 'sources and tests stay out');

  // A clean directory: nothing of the project's node_modules. Install scripts are skipped and
  // the one native module (better-sqlite3, the same version for the same Node) is taken from
  // the project's build: compiling it a second time took most of this test's 105 s.
  // --prefer-offline: what npm ci and earlier runs put in npm's cache is taken without asking the
  // registry again whether it changed (24 s → 9 s here); what the cache lacks is still fetched.
  const clean = tempDir('tavily-pool-install-');
  const install = run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--omit=dev', '--ignore-scripts', path.join(packDir, tarball)], clean);
  assert.equal(install.status, 0, install.out);
  const native = (root: string) => path.join(root, 'node_modules', 'better-sqlite3');
  const version = (root: string) => (JSON.parse(fs.readFileSync(path.join(native(root), 'package.json'), 'utf8')) as { version: string }).version;
  assert.equal(version(clean), version(ROOT), 'the installed better-sqlite3 is the one built here');
  fs.cpSync(path.join(native(ROOT), 'build', 'Release', 'better_sqlite3.node'), path.join(native(clean), 'build', 'Release', 'better_sqlite3.node'));
  const bin = path.join(clean, 'node_modules', '.bin', 'tavily-pool');
  assert.ok(fs.existsSync(bin));

  const dataDir = path.join(clean, 'data');
  const child = spawn(bin, ['serve'], { cwd: clean, env: { PATH: process.env.PATH ?? '', DATA_DIR: dataDir, HOST: '127.0.0.1', PORT: '0' }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  let url = '';
  for (let i = 0; i < 400 && !url; i++) {
    url = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1] ?? '';
    if (!url) await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(url, `the installed server did not start:\n${out}`);
  assert.equal((await fetch(`${url}/readyz`)).status, 200);
  const page = await fetch(`${url}/`);
  assert.match(await page.text(), /<div id="root">/, 'the dashboard is bundled');
  assert.match(out, /generated an admin token/);

  // The installed CLI finds the generated token in DATA_DIR and talks to the server.
  const status = run(bin, ['status'], clean, { TAVILY_POOL_URL: url, DATA_DIR: dataDir, ADMIN_TOKEN: '' });
  assert.equal(status.status, 0, status.out);
  assert.match(status.out, /^keys +0: /m);
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
});

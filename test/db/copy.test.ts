import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { advanceSequences, copyTables } from '../../src/db/copy.js';
import { type DatabaseHandle, openDatabase } from '../../src/db/database.js';
import { type TestApp, startTestApp } from '../support/app.js';
import { type TestDatabase, dialects } from '../support/db.js';
import { entry } from '../support/entry.js';
import { FakeTavily } from '../support/fake-tavily.js';

const [sqlite, postgres] = dialects as [(typeof dialects)[0], (typeof dialects)[0]];

if (postgres.skip) test('copying SQLite into PostgreSQL (tavily-pool migrate)', { skip: postgres.skip }, () => {});
else describe('copying SQLite into PostgreSQL (tavily-pool migrate)', () => {
  let fake: FakeTavily;
  let source: TestApp;
  let pgDb: TestDatabase;
  let target: DatabaseHandle;

  before(async () => {
    fake = await FakeTavily.start();
    source = await startTestApp(sqlite, { tavilyBaseUrl: fake.url });
    const keys = Array.from({ length: 30 }, (_, i) => `tvly-dev-migrate${String(i).padStart(6, '0')}`);
    // Ten of them in one account: accounts travel with their keys.
    await source.app.inject({ method: 'POST', url: '/api/v1/admin/tavily-keys?validate=true', headers: source.auth, payload: { keys: keys.slice(0, 10), account: 'team@example.com' } });
    await source.app.inject({ method: 'POST', url: '/api/v1/admin/tavily-keys?validate=true', headers: source.auth, payload: { keys: keys.slice(10) } });
    const tok = await source.app.inject({ method: 'POST', url: '/api/v1/admin/tokens', headers: source.auth, payload: { name: 'agents', monthly_budget: 1000 } });
    for (let i = 0; i < 25; i++) {
      await source.app.inject({ method: 'POST', url: '/search', headers: { authorization: `Bearer ${tok.json().token}` }, payload: { query: `q${i}` } });
    }
    await source.app.inject({ method: 'POST', url: '/research', headers: { authorization: `Bearer ${tok.json().token}` }, payload: { input: 'a topic' } });
    // An alert sink, a token past 80% of its budget: a sink, an event, its delivery, a condition.
    await source.app.inject({ method: 'POST', url: '/api/v1/admin/alerts/sinks', headers: source.auth, payload: { name: 'hook', kind: 'webhook', url: 'http://127.0.0.1:9/hook', enabled: true } });
    await source.app.inject({ method: 'PATCH', url: `/api/v1/admin/tokens/${tok.json().item.id}`, headers: source.auth, payload: { monthly_budget: 30 } });
    await source.ctx.parts.outbox.flush();
    await source.ctx.parts.alerts.check();
    // The source keeps still while it is copied and compared: no delivery attempt in between.
    await source.ctx.parts.alerts.delivery.close();
    pgDb = await postgres.create();
    target = await openDatabase(pgDb.config, pgDb.open);
  });
  after(async () => {
    await target?.close();
    await source?.close();
    await pgDb?.cleanup();
    await fake?.close();
  });

  const dump = async (db: DatabaseHandle['db']) => ({
    settings: await db.selectFrom('settings').selectAll().orderBy('name').execute(),
    accounts: await db.selectFrom('tavily_accounts').selectAll().orderBy('id').execute(),
    keys: await db.selectFrom('tavily_keys').selectAll().orderBy('id').execute(),
    tokens: await db.selectFrom('client_tokens').selectAll().orderBy('id').execute(),
    logs: await db.selectFrom('request_logs').selectAll().orderBy('id').execute(),
    research: await db.selectFrom('research_tasks').selectAll().orderBy('request_id').execute(),
    sinks: await db.selectFrom('alert_sinks').selectAll().orderBy('id').execute(),
    events: await db.selectFrom('alert_events').selectAll().orderBy('id').execute(),
    deliveries: await db.selectFrom('alert_deliveries').selectAll().orderBy('id').execute(),
    active: await db.selectFrom('alert_active').selectAll().orderBy('name').execute(),
    audit: await db.selectFrom('audit_log').selectAll().orderBy('id').execute(),
  });

  test('copies every row with its id, in batches; a second run copies nothing twice', async () => {
    const first = await copyTables(source.ctx.parts.database.db, target.db, { batch: 7 });
    await advanceSequences(target.db);
    assert.deepEqual(
      first.map((r) => [r.table, r.read, r.inserted, r.skipped]),
      [
        ['settings', 1, 1, 0],
        ['tavily_accounts', 1, 1, 0],
        ['tavily_keys', 30, 30, 0],
        ['client_tokens', 1, 1, 0],
        ['request_logs', 26, 26, 0],
        ['research_tasks', 1, 1, 0],
        ['alert_sinks', 1, 1, 0],
        ['alert_events', 1, 1, 0],
        ['alert_deliveries', 1, 1, 0],
        ['alert_active', 1, 1, 0],
        // Two imports, a token made and changed, a sink added.
        ['audit_log', 5, 5, 0],
      ],
    );
    const src = await dump(source.ctx.parts.database.db);
    const dst = await dump(target.db);
    assert.deepEqual(dst, src, 'the rows arrive exactly as they were');

    const again = await copyTables(source.ctx.parts.database.db, target.db);
    assert.deepEqual(again.map((r) => r.inserted), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual(again.map((r) => r.skipped), [1, 1, 30, 1, 26, 1, 1, 1, 1, 1, 5]);
    assert.equal(dst.keys.filter((k) => k.account_id === dst.accounts[0]!.id).length, 10);
  });

  test('new rows in PostgreSQL get ids after the copied ones', async () => {
    const row = await target.db
      .insertInto('tavily_keys')
      .values({ key_ciphertext: 'x', key_hash: 'new-hash', key_masked: 'm', status: 'active', created_at: 'now', updated_at: 'now' })
      .returning('id')
      .executeTakeFirstOrThrow();
    assert.equal(row.id, 31);
    const account = await target.db
      .insertInto('tavily_accounts')
      .values({ name: 'new', created_at: 'now', updated_at: 'now' })
      .returning('id')
      .executeTakeFirstOrThrow();
    assert.equal(account.id, 2);
  });

  test('the command reports its counts, and names what is wrong with its arguments', () => {
    const cli = (...args: string[]) =>
      spawnSync(process.execPath, [...entry('src/cli.ts'), ...args], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } });
    const file = (source.db.config as { file: string }).file;
    const url = new URL((pgDb.config as { url: string }).url);
    url.searchParams.set('options', `-c search_path=${pgDb.open.pgSearchPath}`);
    const r = cli('migrate', '--from', `sqlite:${file}`, '--to', url.toString());
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /tavily_keys\s+30\s+0\s+30/);
    assert.match(r.stdout, /request_logs\s+26\s+0\s+26/);

    const missing = cli('migrate', '--from', 'sqlite:/nonexistent/x.db', '--to', url.toString());
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /no SQLite database at \/nonexistent\/x\.db/);
    assert.match(cli('migrate', '--from', `sqlite:${file}`).stderr, /--to is required/);
    assert.match(cli('migrate', '--from', 'mysql://x', '--to', url.toString()).stderr, /--from must be sqlite:<file>/);
    const unknown = cli('frobnicate');
    assert.match(unknown.stderr, /unknown command 'frobnicate'/);
    assert.equal(unknown.status, 2);
  });

  test('the command refuses a PostgreSQL database whose instances use another ENCRYPTION_KEY, and copies nothing', async () => {
    const other = await postgres.create();
    const otherDb = await openDatabase(other.config, other.open);
    try {
      await otherDb.db.insertInto('settings').values({ name: 'encryption_key_check', value: 'fingerprint-of-another-key' }).execute();
      const url = new URL((other.config as { url: string }).url);
      url.searchParams.set('options', `-c search_path=${other.open.pgSearchPath}`);
      const file = (source.db.config as { file: string }).file;
      const r = spawnSync(process.execPath, [...entry('src/cli.ts'), 'migrate', '--from', `sqlite:${file}`, '--to', url.toString()], {
        encoding: 'utf8',
        env: { PATH: process.env.PATH ?? '' },
      });
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, /another ENCRYPTION_KEY/);
      const n = await otherDb.db.selectFrom('tavily_keys').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
      assert.equal(Number(n.n), 0, 'no key was copied');
    } finally {
      await otherDb.close();
      await other.cleanup();
    }
  });
});

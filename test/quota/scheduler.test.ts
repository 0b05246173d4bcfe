import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config.js';
import { type AppContext, createContext } from '../../src/context.js';
import { generateEncryptionKey, parseEncryptionKey } from '../../src/crypto.js';
import { createLogger } from '../../src/logger.js';
import { recheckExhausted } from '../../src/quota/jobs.js';
import { LogSink, startTestApp } from '../support/app.js';
import { type TestDatabase, describeEachDialect, dialects } from '../support/db.js';
import { FakeTavily, defaultUsage } from '../support/fake-tavily.js';

const postgres = dialects[1]!;

test('REFRESH_CRON, REFRESH_ON_START and REFRESH_STALE_AFTER_S are read and checked', () => {
  const c = loadConfig({ REFRESH_CRON: '*/15 * * * *', REFRESH_ON_START: 'false', REFRESH_STALE_AFTER_S: '600' });
  assert.equal(c.refreshCron, '*/15 * * * *');
  assert.equal(c.refreshOnStart, false);
  assert.equal(c.refreshStaleAfterS, 600);
  assert.equal(loadConfig({}).refreshCron, '0 * * * *');
  assert.equal(loadConfig({}).refreshOnStart, true);
  assert.throws(() => loadConfig({ REFRESH_CRON: 'every hour' }), (e: unknown) => e instanceof ConfigError && e.variable === 'REFRESH_CRON');
  assert.throws(() => loadConfig({ REFRESH_ON_START: 'maybe' }), (e: unknown) => e instanceof ConfigError && e.variable === 'REFRESH_ON_START');
});

describeEachDialect('scheduled jobs', (dialect) => {
  let fake: FakeTavily;
  before(async () => {
    fake = await FakeTavily.start({ latencyMs: 50 });
  });
  after(async () => {
    await fake.close();
  });

  test('a run that overlaps the previous one is skipped and logged', async () => {
    const t = await startTestApp(dialect, { tavilyBaseUrl: fake.url });
    try {
      const s = t.ctx.jobs;
      await t.ctx.services.keys.add({ remote_addr: null, user_agent: 'test' }, { inputs: ['tvly-dev-overlap00001'], label: null, validate: false });
      fake.resetStats();
      const [a, b] = await Promise.all([s.runNow('refresh'), s.runNow('refresh')]);
      assert.deepEqual([a, b], ['ran', 'overlap']);
      assert.equal(fake.stats.usageCalls, 1);
      assert.match(t.logs.text, /"job":"refresh".*the previous run has not finished: this run is skipped/);
      // The scheduled refresh leaves keys refreshed lately alone.
      assert.equal(await s.runNow('refresh'), 'ran');
      assert.equal(fake.stats.usageCalls, 1);
    } finally {
      await t.close();
    }
  });

  test('the low-rate check of exhausted keys sees a new billing cycle and puts the key back, whatever the date', async () => {
    const t = await startTestApp(dialect, { tavilyBaseUrl: fake.url });
    try {
      const key = 'tvly-dev-spent-monthly01';
      await t.ctx.services.keys.add({ remote_addr: null, user_agent: 'test' }, { inputs: [key, 'tvly-dev-monthlygood01'], label: null, validate: true });
      await t.ctx.parts.loader.load();
      const [row] = (await t.ctx.parts.repos.keys.list({ status: 'exhausted', sort: 'created_at', order: 'asc', limit: 10 })).rows;
      assert.ok(row, 'the spent key starts exhausted');
      assert.equal(t.ctx.parts.pool.get(row.id)!.health, 'exhausted');
      // Nothing changed at Tavily yet: the key stays out.
      fake.resetStats();
      // Checked within the last hour (by the import): the low-rate check leaves it alone.
      assert.deepEqual(await recheckExhausted({ refresher: t.ctx.parts.refresher, log: t.ctx.log }), { checked: 0, new_cycles: 0 });
      await t.ctx.parts.database.db.updateTable('tavily_keys').set({ last_refreshed_at: '2026-01-01T00:00:00.000Z' }).execute();
      assert.deepEqual(await recheckExhausted({ refresher: t.ctx.parts.refresher, log: t.ctx.log }), { checked: 1, new_cycles: 0 });
      assert.equal((await t.ctx.parts.repos.keys.getById(row.id))!.status, 'exhausted');
      // A new billing cycle: Tavily reports the key's usage fallen.
      fake.setKey(key, { kind: 'ok', usage: { ...defaultUsage(key), key: { usage: 0, limit: 1000 }, account: { ...defaultUsage(key).account, plan_usage: 0 } } });
      await t.ctx.parts.database.db.updateTable('tavily_keys').set({ last_refreshed_at: '2026-01-01T00:00:00.000Z' }).execute();
      fake.resetStats();
      assert.deepEqual(await recheckExhausted({ refresher: t.ctx.parts.refresher, log: t.ctx.log }), { checked: 1, new_cycles: 1 });
      assert.equal(fake.stats.usageCalls, 1, 'only the exhausted key is checked');
      const after = (await t.ctx.parts.repos.keys.getById(row.id))!;
      assert.equal(after.status, 'active');
      assert.equal(after.remaining_quota, 1000);
      assert.ok(after.cycle_started_at, 'the new cycle is recorded');
      assert.equal(t.ctx.parts.pool.get(row.id)!.health, 'active', 'the gateway can use it again at once');
    } finally {
      await t.close();
    }
  });
});

if (postgres.skip) test('scheduled jobs across instances on PostgreSQL', { skip: postgres.skip }, () => {});
else
  describe('scheduled jobs across instances on PostgreSQL', () => {
    let fake: FakeTavily;
    let db: TestDatabase;
    const instances: AppContext[] = [];
    before(async () => {
      fake = await FakeTavily.start({ latencyMs: 100 });
      db = await postgres.create();
      const encryptionKey = parseEncryptionKey(generateEncryptionKey());
      for (let i = 0; i < 3; i++) {
        const config = { ...loadConfig({ DATA_DIR: db.dataDir, TAVILY_BASE_URL: fake.url }), database: db.config };
        instances.push(await createContext(config, { adminToken: 'x'.repeat(20), encryptionKey }, createLogger('info', new LogSink()), db.open));
      }
    });
    after(async () => {
      for (const c of instances) await c.close();
      await db.cleanup();
      await fake.close();
    });

    test('three instances, one scheduled refresh: /usage is called exactly once per key', async () => {
      const keys = Array.from({ length: 40 }, (_, i) => `tvly-dev-threeinst${String(i).padStart(4, '0')}`);
      await instances[0]!.services.keys.add({ remote_addr: null, user_agent: 'test' }, { inputs: keys, label: null, validate: false });
      const schedulers = instances.map((c) => c.jobs);
      fake.resetStats();
      // All three timers fire together; then one fires again a moment later.
      const outcomes = await Promise.all(schedulers.map((s) => s.runNow('refresh')));
      assert.deepEqual([...outcomes].sort(), ['elsewhere', 'elsewhere', 'ran']);
      assert.equal(await schedulers[1]!.runNow('refresh'), 'ran');
      assert.equal(fake.stats.usageCalls, 40);
      assert.ok([...fake.stats.callsByKey.values()].every((n) => n === 1), 'each key once');
    });
  });

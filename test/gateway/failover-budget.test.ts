import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { KeyStates } from '../../src/pool/key-states.js';
import { KeyPool, type PoolEntry } from '../../src/pool/pool.js';
import { type GatewayCase, type TestApp, fakeUpstream, keysAndToken } from '../support/app.js';
import { describeEachDialect } from '../support/db.js';

type Ctx = GatewayCase;
const setup = keysAndToken;

const search = (c: Ctx, query = 'hello') =>
  c.t.app.inject({ method: 'POST', url: '/search', headers: { authorization: `Bearer ${c.token}` }, payload: { query } });

async function logRows(t: TestApp) {
  await t.ctx.parts.outbox.flush();
  return t.ctx.parts.database.db.selectFrom('request_logs').select(['status', 'attempts', 'key_id', 'endpoint']).orderBy('id').execute();
}

describeEachDialect('failover that does not give up while a good key exists', (dialect) => {
  const up = fakeUpstream(dialect);

  test('14 keys, 9 of them bad and none refreshed: 5 runs of 200 searches, 10 at a time, all served; failing keys get a shrinking share', async () => {
    let served = 0;
    for (let run = 0; run < 5; run++) {
      await up.withApp({}, async (t) => {
        const good = Array.from({ length: 5 }, (_, i) => `tvly-dev-fb${run}good000${i}`);
        const flaky = [`tvly-dev-fb${run}flaky0001`, `tvly-dev-fb${run}flaky0002`];
        const bad = [
          ...Array.from({ length: 3 }, (_, i) => `tvly-dev-fb${run}invalid00${i}`),
          ...Array.from({ length: 3 }, (_, i) => `tvly-dev-fb${run}plan432-0${i}`),
          `tvly-dev-fb${run}ratelimit01`,
          ...flaky,
        ];
        const c = await setup(t, [...good, ...bad]);
        up.fake.resetStats();
        const statuses: number[] = [];
        const flakyTries: number[] = [];
        for (let wave = 0; wave < 20; wave++) {
          const before = flaky.reduce((n, k) => n + (up.fake.stats.requestsByKey.get(k) ?? 0), 0);
          const rs = await Promise.all(Array.from({ length: 10 }, (_, i) => search(c, `q${wave}-${i}`)));
          statuses.push(...rs.map((r) => r.statusCode));
          flakyTries.push(flaky.reduce((n, k) => n + (up.fake.stats.requestsByKey.get(k) ?? 0), 0) - before);
        }
        assert.deepEqual(statuses.filter((s) => s !== 200), [], `run ${run}: every search was served`);
        served += statuses.length;
        // A key that failed rests (5 s at first): after the first waves it is not tried again.
        const early = flakyTries.slice(0, 5).reduce((a, b) => a + b, 0);
        const late = flakyTries.slice(10).reduce((a, b) => a + b, 0);
        assert.ok(late < early || (early === 0 && late === 0), `run ${run}: flaky keys tried ${early} times in the first 50 searches, ${late} in the last 100`);
        assert.equal(late, 0, 'once they failed, the flaky keys rested for the rest of the run');
        const rows = await logRows(t);
        assert.equal(rows.length, 200);
        assert.equal(up.fake.stats.requests.get('/search'), rows.reduce((s, r) => s + r.attempts, 0), 'every upstream call is a logged attempt');
      });
    }
    assert.equal(served, 1000);
  });

  test('answers that cost nothing do not use up MAX_ATTEMPTS: with MAX_ATTEMPTS=1 a request gets past 3 invalid keys and 1 spent one', () =>
    up.withApp({ MAX_ATTEMPTS: '1', KEY_STRATEGY: 'round-robin' }, async (t) => {
      const c = await setup(t, ['tvly-dev-ma1invalid-01', 'tvly-dev-ma1invalid-02', 'tvly-dev-ma1invalid-03', 'tvly-dev-ma1plan432-01', 'tvly-dev-ma1good00001']);
      const r = await search(c);
      assert.equal(r.statusCode, 200, r.body);
      const [row] = await logRows(t);
      assert.equal(row!.attempts, 5);
      assert.equal(row!.key_id, c.ids.get('tvly-dev-ma1good00001'));
    }));

  test('costly failures do: MAX_ATTEMPTS=2 over failing keys answers 503 after 2 of them', () =>
    up.withApp({ MAX_ATTEMPTS: '2', KEY_STRATEGY: 'round-robin' }, async (t) => {
      const c = await setup(t, ['tvly-dev-maerror5xx-01', 'tvly-dev-maerror5xx-02', 'tvly-dev-maerror5xx-03', 'tvly-dev-magood000001']);
      const r = await search(c);
      assert.equal(r.statusCode, 503, r.body);
      assert.match(r.json().detail.error, /every key tried failed .*500.*500/);
      assert.equal(up.fake.stats.requests.get('/search'), 2);
    }));

  test('FAILOVER_BUDGET_MS bounds a request that meets key after key answering 429', () =>
    up.withApp({ FAILOVER_BUDGET_MS: '700', MAX_ATTEMPTS: '3' }, async (t) => {
      const keys = Array.from({ length: 30 }, (_, i) => `tvly-dev-budgetratelimit${String(i).padStart(2, '0')}`);
      const c = await setup(t, keys);
      up.fake.latencyMs = 100;
      const r = await search(c);
      up.fake.latencyMs = 0;
      assert.equal(r.statusCode, 503, r.body);
      const tried = up.fake.stats.requests.get('/search') ?? 0;
      // 429s cost nothing, so MAX_ATTEMPTS (3) does not stop it; at ~100 ms a key, the budget does.
      assert.ok(tried > 3 && tried < 30, `the request stopped after ${tried} of 30 keys`);
    }));

  test('when every key rests after failing (Tavily down a moment), the next request still tries one', () =>
    up.withApp({ MAX_ATTEMPTS: '3' }, async (t) => {
      const keys = ['tvly-dev-restall000001', 'tvly-dev-restall000002'];
      const c = await setup(t, keys);
      for (const k of keys) up.fake.setRequestBehaviour(k, { kind: 'status', status: 500 });
      assert.equal((await search(c)).statusCode, 503);
      assert.equal(t.ctx.parts.pool.counts().cooling, 2, 'both keys rest');
      // Tavily is back: the rests have not ended, but the pool has nothing else.
      for (const k of keys) up.fake.setRequestBehaviour(k, { kind: 'ok', usage: { key: { usage: 0, limit: 1000 }, account: { current_plan: 'x', plan_usage: 0, plan_limit: 1000, paygo_usage: 0, paygo_limit: null } } });
      assert.equal((await search(c)).statusCode, 200);
    }));

  test('a failing key rests, and the key object says until when and why', () =>
    up.withApp({ KEY_STRATEGY: 'round-robin' }, async (t) => {
      const c = await setup(t, ['tvly-dev-resterror5xx-1', 'tvly-dev-restgood000001']);
      assert.equal((await search(c)).statusCode, 200);
      await t.ctx.parts.outbox.flush();
      const id = c.ids.get('tvly-dev-resterror5xx-1')!;
      const k = (await t.app.inject({ method: 'GET', url: `/api/v1/admin/tavily-keys/${id}`, headers: t.auth })).json();
      assert.equal(k.status, 'active');
      assert.ok(Date.parse(k.cooldown_until) > Date.now());
      assert.match(k.cooldown_reason, /^failed \(500 Internal Server Error\): resting 5 s$/);
    }));

  test('a research poll survives a 500 from its key: retried on that key, billed once', () =>
    up.withApp({}, async (t) => {
      const key = 'tvly-dev-pollretry00001';
      const c = await setup(t, [key]);
      const created = await t.app.inject({ method: 'POST', url: '/research', headers: { authorization: `Bearer ${c.token}` }, payload: { input: 'a topic' } });
      assert.equal(created.statusCode, 201);
      const id = created.json().request_id as string;
      up.fake.setRequestBehaviour(key, { kind: 'flaky' });
      for (let i = 0; i < 4; i++) {
        const r = await t.app.inject({ method: 'GET', url: `/research/${id}`, headers: { authorization: `Bearer ${c.token}` } });
        assert.equal(r.statusCode, 200, `poll ${i}: ${r.body}`);
      }
      const polls = (await logRows(t)).filter((r) => r.endpoint === 'research.get');
      assert.deepEqual(polls.map((r) => r.attempts), [2, 2, 2, 2], 'each poll met one 500 and was retried');
      assert.equal(up.fake.totalCredits, 4);
    }));

  test('keys added without ?validate=true are checked against /usage in the background', () =>
    up.withApp({ VALIDATE_ON_IMPORT: 'true' }, async (t) => {
      const keys = ['tvly-dev-bgcheckgood001', 'tvly-dev-bgcheckinvalid1', 'tvly-dev-bgcheckspent001'];
      const c = await setup(t, keys);
      for (let i = 0; i < 200 && t.ctx.parts.refresher.lastResult?.total !== 3; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(t.ctx.parts.refresher.lastResult?.total, 3, 'the new keys were checked');
      assert.equal(up.fake.stats.usageCalls, 3);
      assert.equal(t.ctx.parts.pool.get(c.ids.get(keys[1]!)!)!.health, 'invalid', 'the pool knows the dead key before any search');
      assert.equal(t.ctx.parts.pool.get(c.ids.get(keys[2]!)!)!.health, 'exhausted');
      assert.ok(t.ctx.parts.pool.get(c.ids.get(keys[0]!)!)!.remaining! > 0);
      // With ?validate=true the import checked them itself: no second round.
      up.fake.resetStats();
      const v = await t.app.inject({ method: 'POST', url: '/api/v1/admin/tavily-keys?validate=true', headers: t.auth, payload: { keys: ['tvly-dev-bgcheckvalid001'] } });
      assert.equal(v.statusCode, 201);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(up.fake.stats.usageCalls, 1);
    }));
});

describe('the rest of a failing key', () => {
  const entry = (id: number): PoolEntry => ({ id, plain: `tvly-dev-k${id}`, masked: `…${id}`, health: 'active', enabled: true, remaining: 100, lastUsed: 0, coolUntil: 0, accountId: null, accountRemaining: null });
  const writes: unknown[] = [];
  const log = { warn: () => {} } as never;

  test('5 s after the first failure, doubling after each next one, at most 5 min; an answer ends the run', () => {
    const pool = new KeyPool('round-robin');
    pool.load([entry(1)]);
    const states = new KeyStates(pool, { keyCooldown: (...a: unknown[]) => writes.push(a) } as never, log);
    const k = pool.get(1)!;
    const rests: number[] = [];
    for (let i = 0; i < 9; i++) {
      const now = 1_000_000 * (i + 1);
      states.failed(k, '500', 'search', now);
      rests.push((k.coolUntil - now) / 1000);
    }
    assert.deepEqual(rests, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
    states.answered(k);
    assert.equal(k.failStreak, 0);
    pool.close();
  });

  test('pickResting: the key whose rest ends first, never one resting after a 429', () => {
    const pool = new KeyPool('round-robin');
    pool.load([entry(1), entry(2), entry(3)]);
    const now = Date.now();
    const states = new KeyStates(pool, { keyCooldown: () => {} } as never, log);
    states.failed(pool.get(1)!, '500', 'search', now);
    states.failed(pool.get(2)!, '500', 'search', now);
    states.failed(pool.get(2)!, '500', 'search', now);
    states.rateLimited(pool.get(3)!, 1, 'search');
    assert.equal(pool.pick(), null);
    assert.equal(pool.pickResting()?.id, 1);
    assert.equal(pool.pickResting(new Set([1]))?.id, 2);
    assert.equal(pool.pickResting(new Set([1, 2])), null, 'a key Tavily asked to rest is not taken');
    pool.close();
  });
});

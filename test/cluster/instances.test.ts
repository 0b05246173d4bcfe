import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { sql } from 'kysely';
import type { PgBus } from '../../src/cluster/bus.js';
import { type TestApp, type TestCluster, startCluster } from '../support/app.js';
import { dialects } from '../support/db.js';
import { FakeTavily, defaultUsage } from '../support/fake-tavily.js';

const postgres = dialects.find((d) => d.name === 'postgres')!;

/** Polls `check` until it holds; returns how long that took, or fails after `limitMs`. */
async function within(limitMs: number, what: string, check: () => boolean | Promise<boolean>): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    if (await check()) return performance.now() - t0;
    if (performance.now() - t0 > limitMs) assert.fail(`${what}: not seen within ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function importKeys(t: TestApp, keys: string[]): Promise<Map<string, number>> {
  const r = await t.app.inject({ method: 'POST', url: '/api/v1/admin/tavily-keys', headers: t.auth, payload: { keys } });
  assert.equal(r.statusCode, 201, r.body);
  return new Map(r.json().items.map((i: { id: number }, n: number) => [keys[n]!, i.id]));
}

async function createToken(t: TestApp, body: object = { name: 'agent' }): Promise<{ id: number; token: string }> {
  const r = await t.app.inject({ method: 'POST', url: '/api/v1/admin/tokens', headers: t.auth, payload: body });
  assert.equal(r.statusCode, 201, r.body);
  return { id: r.json().item.id, token: r.json().token };
}

const search = (t: TestApp, token: string, body: object = { query: 'hello' }) =>
  t.app.inject({ method: 'POST', url: '/search', headers: { authorization: `Bearer ${token}` }, payload: body });

if (postgres.skip) test('several instances on one PostgreSQL', { skip: postgres.skip }, () => {});
else
  describe('several instances on one PostgreSQL', () => {
    let fake: FakeTavily;
    let cluster: TestCluster | undefined;
    before(async () => {
      fake = await FakeTavily.start();
    });
    after(async () => {
      await fake.close();
    });
    beforeEach(() => fake.resetStats());
    const start = async (n: number, env: Record<string, string> = {}) => {
      await cluster?.close();
      cluster = await startCluster(postgres, n, { tavilyBaseUrl: fake.url, env });
      return cluster.instances;
    };
    after(async () => {
      await cluster?.close();
    });

    test('each instance lists the others from their heartbeats, with what they report', async () => {
      const [a, b] = (await start(2)) as [TestApp, TestApp];
      const list = async (t: TestApp) => (await t.app.inject({ method: 'GET', url: '/api/v1/admin/instances', headers: t.auth })).json().items as Array<{ id: string; self: boolean; lost: boolean; listening: boolean; version: string }>;
      // B started last: A heard its first heartbeat, and B heard A's answer to it.
      await within(15_000, 'both instances on each', async () => (await list(a)).length === 2 && (await list(b)).length === 2);
      const fromA = await list(a);
      const fromB = await list(b);
      assert.equal(fromA.find((i) => i.self)!.id, a.ctx.parts.bus!.instanceId);
      assert.equal(fromA.find((i) => !i.self)!.id, b.ctx.parts.bus!.instanceId);
      assert.equal(fromB.find((i) => !i.self)!.id, a.ctx.parts.bus!.instanceId);
      assert.ok(fromA.every((i) => !i.lost && i.listening && i.version === fromA[0]!.version));
    });

    test('a key marked invalid, exhausted or cooling on A is skipped by B within 2 s', async (tc) => {
      const [a, b] = await start(2, { KEY_STRATEGY: 'round-robin', MAX_ATTEMPTS: '5' });
      const good = ['tvly-dev-clustergood001', 'tvly-dev-clustergood002'];
      const bad = ['tvly-dev-invalid-clust01', 'tvly-dev-plan432-clust01', 'tvly-dev-ratelimit-clst1'];
      const ids = await importKeys(a!, [...good, ...bad]);
      await within(15_000, 'B has the imported keys', () => b!.ctx.parts.pool.size === 5);
      const { token } = await createToken(a!);
      await within(15_000, 'B knows the token', async () => (await search(b!, token)).statusCode === 200);
      fake.resetStats();

      // A meets every bad key: round-robin over 5 keys, each request trying up to 5.
      for (let i = 0; i < 5 && bad.some((k) => !fake.stats.requestsByKey.get(k)); i++) assert.equal((await search(a!, token)).statusCode, 200);
      for (const k of bad) assert.equal(fake.stats.requestsByKey.get(k), 1, `A tried ${k} once`);
      const elapsed = await within(15_000, 'B stops choosing the three keys', () => {
        const c = b!.ctx.parts.pool.counts();
        return c.invalid === 1 && c.exhausted === 1 && c.cooling === 1 && c.available === 2;
      });
      assert.ok(elapsed < 2000);
      tc.diagnostic(`B stopped choosing the three keys ${Math.round(elapsed)} ms after A's last answer`);
      assert.equal(b!.ctx.parts.pool.get(ids.get(bad[0]!)!)!.health, 'invalid');
      assert.equal(b!.ctx.parts.pool.get(ids.get(bad[1]!)!)!.health, 'exhausted');
      assert.ok(b!.ctx.parts.pool.get(ids.get(bad[2]!)!)!.coolUntil > Date.now() + 50_000, 'B rests the key for the Retry-After A heard');

      for (let i = 0; i < 30; i++) assert.equal((await search(b!, token)).statusCode, 200);
      for (const k of bad) assert.equal(fake.stats.requestsByKey.get(k), 1, `B never sent ${k} a request`);
      // And what B learned is in the database for any instance that starts later.
      const rows = await a!.ctx.parts.repos.keys.loadForPool([...ids.values()]);
      const byId = new Map(rows.map((r) => [r.id, r]));
      assert.equal(byId.get(ids.get(bad[0]!)!)!.status, 'invalid');
      assert.equal(byId.get(ids.get(bad[1]!)!)!.status, 'exhausted');
      assert.ok(Date.parse(byId.get(ids.get(bad[2]!)!)!.cooldown_until!) > Date.now() + 50_000);
    });

    test('admin changes on one instance reach the others within 2 s', async () => {
      const [a, b, c] = await start(3);
      const keys = ['tvly-dev-adminsync00001', 'tvly-dev-adminsync00002'];
      const ids = await importKeys(a!, keys);
      await within(15_000, 'imported keys on B and C', () => b!.ctx.parts.pool.size === 2 && c!.ctx.parts.pool.size === 2);

      const tok = await createToken(b!, { name: 'shared', rpm_limit: 1000 });
      await within(15_000, 'a token made on B works on C', async () => (await search(c!, tok.token)).statusCode === 200);

      const patch = await c!.app.inject({ method: 'PATCH', url: `/api/v1/admin/tavily-keys/${ids.get(keys[0]!)}`, headers: c!.auth, payload: { enabled: false } });
      assert.equal(patch.statusCode, 200, patch.body);
      await within(15_000, 'a key disabled on C is out of A and B', () => a!.ctx.parts.pool.counts().disabled === 1 && b!.ctx.parts.pool.counts().disabled === 1);

      const del = await a!.app.inject({ method: 'DELETE', url: `/api/v1/admin/tavily-keys/${ids.get(keys[1]!)}`, headers: a!.auth });
      assert.equal(del.statusCode, 204, del.body);
      await within(15_000, 'a key deleted on A is gone from B and C', () => b!.ctx.parts.pool.size === 1 && c!.ctx.parts.pool.size === 1);

      const revoke = await a!.app.inject({ method: 'DELETE', url: `/api/v1/admin/tokens/${tok.id}`, headers: a!.auth });
      assert.ok(revoke.statusCode < 300, revoke.body);
      await within(15_000, 'a token revoked on A is refused by C', async () => (await search(c!, tok.token)).statusCode === 401);
    });

    test('a token budget holds across instances', async () => {
      const [a, b] = await start(2);
      await importKeys(a!, ['tvly-dev-budgetsync0001', 'tvly-dev-budgetsync0002']);
      const tok = await createToken(a!, { name: 'budgeted', monthly_budget: 10 });
      await within(15_000, 'B knows the token', () => b!.ctx.parts.tokens.byId(tok.id) !== undefined);
      for (let i = 0; i < 6; i++) assert.equal((await search(a!, tok.token)).statusCode, 200);
      await within(15_000, 'B sees the 6 credits A charged', () => b!.ctx.parts.tokens.byId(tok.id)!.spent === 6);
      const answers = [];
      for (let i = 0; i < 6; i++) answers.push((await search(b!, tok.token)).statusCode);
      assert.deepEqual(answers, [200, 200, 200, 200, 432, 432], 'B serves what is left of the budget, then refuses');
      await within(15_000, 'A sees B’s spend too', () => a!.ctx.parts.tokens.byId(tok.id)!.spent === 10);
      assert.equal((await search(a!, tok.token)).statusCode, 432);
      assert.equal(fake.totalCredits, 10);
    });

    test('a token’s spend counts on the other instances at once, not at the next flush: what each holds travels on the change feed', async () => {
      // Flushes every minute: only the budget figures on the change feed can bring B the spend in time.
      await cluster?.close();
      cluster = await startCluster(postgres, 2, { tavilyBaseUrl: fake.url, flushIntervalMs: 60_000 });
      const [a, b] = cluster.instances;
      await importKeys(a!, ['tvly-dev-nearbudget0001']);
      const tok = await createToken(a!, { name: 'near', monthly_budget: 10 });
      await within(15_000, 'B knows the token', () => b!.ctx.parts.tokens.byId(tok.id) !== undefined);
      await within(15_000, 'A and B hear each other', () => a!.ctx.parts.instances.live() === 2 && b!.ctx.parts.instances.live() === 2);
      for (let i = 0; i < 8; i++) assert.equal((await search(a!, tok.token)).statusCode, 200);
      await within(15_000, 'B counts the 8 credits A charged (not flushed yet)', () => b!.ctx.parts.budget.left(b!.ctx.parts.tokens.byId(tok.id)!) === 2);
      assert.equal(b!.ctx.parts.tokens.byId(tok.id)!.spent, 0, 'nothing flushed: B read it from A’s figure, not from a flush');
      assert.equal((await search(b!, tok.token)).statusCode, 200);
      assert.equal((await search(b!, tok.token)).statusCode, 200);
      assert.equal((await search(b!, tok.token)).statusCode, 432);
      await within(15_000, 'A counts B’s 2', () => a!.ctx.parts.budget.left(a!.ctx.parts.tokens.byId(tok.id)!) === 0);
      assert.equal((await search(a!, tok.token)).statusCode, 432);
      assert.equal(fake.totalCredits, 10);
    });

    test('a research task made on A and polled on B and A is billed once', async () => {
      const [a, b] = await start(2);
      await importKeys(a!, ['tvly-dev-researchsync01', 'tvly-dev-researchsync02']);
      const tok = await createToken(a!);
      await within(15_000, 'B knows the token', () => b!.ctx.parts.tokens.byId(tok.id) !== undefined);
      const auth = { authorization: `Bearer ${tok.token}` };
      const created = await a!.app.inject({ method: 'POST', url: '/research', headers: auth, payload: { input: 'a topic' } });
      assert.equal(created.statusCode, 201, created.body);
      const id = created.json().request_id as string;
      // B finds the task's key in the database (A records it within ~50 ms).
      let onB = await b!.app.inject({ method: 'GET', url: `/research/${id}`, headers: auth });
      for (let i = 0; i < 100 && onB.statusCode === 404; i++) {
        await new Promise((r) => setTimeout(r, 20));
        onB = await b!.app.inject({ method: 'GET', url: `/research/${id}`, headers: auth });
      }
      assert.equal(onB.statusCode, 200, onB.body);
      const heard = a!.ctx.parts.sync.stats.items;
      await b!.ctx.parts.outbox.flush();
      await within(15_000, 'A hears B’s flush', () => a!.ctx.parts.sync.stats.items > heard);
      const onA = await a!.app.inject({ method: 'GET', url: `/research/${id}`, headers: auth });
      assert.equal(onA.statusCode, 200, onA.body);
      await Promise.all([a!, b!].map((t) => t.ctx.parts.outbox.flush()));
      const logged = await sql<{ n: number }>`select coalesce(sum(credits), 0) as n from request_logs where endpoint = 'research.get'`.execute(a!.ctx.parts.database.db);
      assert.equal(fake.totalCredits, 4);
      assert.equal(Number(logged.rows[0]!.n), 4, 'billed once, on B; the later poll on A counts nothing');
    });

    test('1,000 requests over 2 instances: the credits deducted equal what Tavily billed', async () => {
      const [a, b] = await start(2);
      const keys = Array.from({ length: 8 }, (_, i) => `tvly-dev-thousand${String(i).padStart(5, '0')}`);
      const ids = await importKeys(a!, keys);
      const r = await a!.app.inject({ method: 'POST', url: '/api/v1/admin/tavily-keys/refresh-quota', headers: a!.auth, payload: {} });
      assert.equal(r.json().success_count, keys.length);
      const start0 = new Map(keys.map((k) => [ids.get(k)!, 1000 - defaultUsage(k).key.usage]));
      // B took the refresh's figures from A's notice, without a refresh of its own.
      await within(15_000, 'B has the refreshed figures', () => [...start0].every(([id, rem]) => b!.ctx.parts.pool.get(id)?.remaining === rem));
      const tok = await createToken(a!);
      await within(15_000, 'B knows the token', () => b!.ctx.parts.tokens.byId(tok.id) !== undefined);
      fake.resetStats();

      const instances = [a!, b!];
      let next = 0;
      const statuses: number[] = [];
      const worker = async () => {
        while (next < 1000) {
          const n = next++;
          const res = await search(instances[n % 2]!, tok.token, { query: `q${n}`, search_depth: n % 3 === 0 ? 'advanced' : 'basic' });
          statuses.push(res.statusCode);
        }
      };
      await Promise.all(Array.from({ length: 20 }, worker));
      assert.equal(statuses.length, 1000);
      assert.ok(statuses.every((s) => s === 200));
      await Promise.all(instances.map((t) => t.ctx.parts.outbox.flush()));

      const billed = fake.totalCredits;
      assert.equal(billed, 334 * 2 + 666);
      const rows = await a!.ctx.parts.repos.keys.loadForPool([...start0.keys()]);
      let deducted = 0;
      for (const row of rows) {
        const spentOnKey = start0.get(row.id)! - row.remaining_quota!;
        assert.equal(spentOnKey, fake.stats.creditsByKey.get(keys.find((k) => ids.get(k) === row.id)!) ?? 0, `key ${row.id}`);
        deducted += spentOnKey;
      }
      assert.equal(deducted, billed, 'deducted in the database = billed by Tavily');
      const logged = await sql<{ n: number }>`select coalesce(sum(credits), 0) as n from request_logs where endpoint = 'search'`.execute(a!.ctx.parts.database.db);
      assert.equal(Number(logged.rows[0]!.n), billed, 'the request log holds the same credits');
      assert.equal((await a!.ctx.parts.repos.tokens.getById(tok.id))!.month_spent, billed, 'the token was charged the same');
      // Each instance's memory agrees with the database once the last notices are in.
      await within(15_000, 'both pools agree with the database', () =>
        rows.every((row) => a!.ctx.parts.pool.get(row.id)!.remaining === row.remaining_quota && b!.ctx.parts.pool.get(row.id)!.remaining === row.remaining_quota),
      );
      await within(15_000, 'both token registries agree', () => a!.ctx.parts.tokens.byId(tok.id)!.spent === billed && b!.ctx.parts.tokens.byId(tok.id)!.spent === billed);
    });

    test('the periodic read catches a change nobody announced', async () => {
      const [a, b] = await start(2, { SYNC_INTERVAL_S: '1' });
      const ids = await importKeys(a!, ['tvly-dev-periodsync001', 'tvly-dev-periodsync002']);
      await within(15_000, 'B has the keys', () => b!.ctx.parts.pool.size === 2);
      const id1 = [...ids.values()][0]!;
      // A hand edit of the database: no instance announces it.
      await a!.ctx.parts.database.db.updateTable('tavily_keys').set({ disabled_at: new Date().toISOString() }).where('id', '=', id1).execute();
      await within(2500, 'B sees the silent change', () => b!.ctx.parts.pool.get(id1)!.enabled === false);
    });

    test('after its listening connection drops, an instance reconnects and reads what it missed', async () => {
      // The periodic read is an hour away here: only the reconnection can bring the change.
      const [a, b] = await start(2, { SYNC_INTERVAL_S: '3600' });
      const ids = await importKeys(a!, ['tvly-dev-missedsync001', 'tvly-dev-missedsync002']);
      await within(15_000, 'B has the keys', () => b!.ctx.parts.pool.size === 2);
      const [id1, id2] = [...ids.values()];
      const bus = b!.ctx.parts.bus as PgBus;
      bus.dropConnectionForTest();
      assert.equal(bus.listening, false);
      const ready = await b!.app.inject({ method: 'GET', url: '/readyz' });
      assert.deepEqual([ready.statusCode, ready.json().sync], [200, 'reconnecting'], 'readiness tells, and the instance stays ready');
      // Announced while B is away: B cannot hear it.
      const patch = await a!.app.inject({ method: 'PATCH', url: `/api/v1/admin/tavily-keys/${id1}`, headers: a!.auth, payload: { enabled: false } });
      assert.equal(patch.statusCode, 200, patch.body);
      await within(2500, 'B listens again', () => bus.listening);
      await within(15_000, 'B read everything after reconnecting', () => b!.ctx.parts.pool.get(id1!)!.enabled === false);
      // And it hears notices again.
      const patch2 = await a!.app.inject({ method: 'PATCH', url: `/api/v1/admin/tavily-keys/${id2}`, headers: a!.auth, payload: { enabled: false } });
      assert.equal(patch2.statusCode, 200, patch2.body);
      await within(15_000, 'B hears A after reconnecting', () => b!.ctx.parts.pool.get(id2!)!.enabled === false);
    });
  });

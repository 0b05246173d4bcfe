import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { KyselyPlugin, PluginTransformQueryArgs, PluginTransformResultArgs, QueryResult, RootOperationNode, UnknownRow } from 'kysely';
import { KeyRepository } from '../../src/db/repositories/keys.js';
import type { KeyRow } from '../../src/db/schema.js';
import { KeyService } from '../../src/services/keys.js';
import { QuotaRefresher, type RefreshRequest, RefreshWriteError } from '../../src/quota/refresh.js';
import { type TestApp, fakeUpstream, startTestApp } from '../support/app.js';
import { describeEachDialect } from '../support/db.js';
import { defaultUsage } from '../support/fake-tavily.js';

/** Makes the n-th `update tavily_keys` statement fail, as a full disk or a lost connection would. */
class FailNthUpdate implements KyselyPlugin {
  seen = 0;
  constructor(private readonly n: number) {}
  transformQuery({ node }: PluginTransformQueryArgs): RootOperationNode {
    if (node.kind === 'RawNode' && node.sqlFragments.join('?').includes('update tavily_keys')) {
      this.seen++;
      if (this.seen === this.n) throw new Error('injected write failure');
    }
    return node;
  }
  async transformResult({ result }: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return result;
  }
}

async function addKeys(t: TestApp, keys: string[]): Promise<Map<string, number>> {
  const res = await t.app.inject({ method: 'POST', url: '/api/v1/admin/tavily-keys', headers: t.auth, payload: { keys } });
  assert.equal(res.statusCode, 201, res.body);
  const ids = new Map<string, number>();
  const body = res.json() as { items: { id: number }[] };
  keys.forEach((k, i) => ids.set(k, body.items[i]!.id));
  return ids;
}

async function refresh(t: TestApp, body?: unknown) {
  const res = await t.app.inject({
    method: 'POST',
    url: '/api/v1/admin/tavily-keys/refresh-quota',
    headers: t.auth,
    ...(body === undefined ? {} : { payload: body as object }),
  });
  assert.equal(res.statusCode, 200, res.body);
  return res.json() as {
    total: number;
    success_count: number;
    failed_count: number;
    started_at: string;
    duration_ms: number;
    failures: { id: number; key_masked: string; error: string; status_code: number | null }[];
  };
}

async function row(t: TestApp, id: number): Promise<KeyRow> {
  const r = await t.ctx.parts.repos.keys.getById(id);
  assert.ok(r, `key ${id} exists`);
  return r;
}

const manyKeys = (n: number, tag = 'good') => Array.from({ length: n }, (_, i) => `tvly-dev-${tag}${String(i).padStart(6, '0')}`);

describeEachDialect('quota refresh', (dialect) => {
  const up = fakeUpstream(dialect);
  const withApp = up.withApp;

  test('classifies every outcome and stores figures and statuses', () =>
    withApp({ REFRESH_TIMEOUT_MS: '300' }, async (t) => {
      const good = manyKeys(3);
      const bad = {
        invalid: 'tvly-dev-invalid-000001',
        spent: 'tvly-dev-spent-0000001',
        plan432: 'tvly-dev-plan432-00001',
        hang: 'tvly-dev-hang-00000001',
        ratelimit: 'tvly-dev-ratelimit-0001',
        error5xx: 'tvly-dev-error5xx-0001',
        malformed: 'tvly-dev-malformed-001',
      };
      const ids = await addKeys(t, [...good, ...Object.values(bad)]);
      const r = await refresh(t);
      assert.equal(r.total, 10);
      assert.equal(r.success_count, 4); // three good keys and the spent one
      assert.equal(r.failed_count, 6);
      const failure = (k: string) => r.failures.find((f) => f.id === ids.get(k));
      assert.equal(failure(bad.invalid)?.status_code, 401);
      assert.equal(failure(bad.ratelimit)?.status_code, 429);
      assert.equal(failure(bad.plan432)?.status_code, 432);
      assert.equal(failure(bad.error5xx)?.status_code, 500);
      assert.equal(failure(bad.hang)?.status_code, null);
      assert.match(failure(bad.hang)!.error, /timed out/);
      assert.match(failure(bad.malformed)!.error, /malformed/);
      for (const f of r.failures) assert.ok(!f.error.includes('tvly-dev-'), 'no key text in an error');

      for (const k of good) {
        const g = await row(t, ids.get(k)!);
        const u = defaultUsage(k);
        assert.equal(g.status, 'active');
        assert.equal(g.key_usage, u.key.usage);
        assert.equal(g.key_limit, 1000);
        assert.equal(g.plan, 'Researcher');
        assert.equal(g.remaining_quota, 1000 - u.key.usage);
        assert.equal(JSON.parse(g.endpoint_usage!).key.search_usage, u.key.search_usage);
        assert.ok(g.last_refreshed_at);
        assert.equal(g.last_checked_at, g.last_refreshed_at);
        assert.equal(g.last_error, null);
      }
      const invalid = await row(t, ids.get(bad.invalid)!);
      assert.equal(invalid.status, 'invalid');
      // A check that answered 401 is a check: its time is kept, apart from the last that read figures.
      assert.equal(invalid.last_refreshed_at, null);
      assert.equal(invalid.last_checked_at, (await row(t, ids.get(good[0]!)!)).last_checked_at);
      assert.ok(invalid.last_checked_at);
      const spent = await row(t, ids.get(bad.spent)!);
      assert.equal(spent.status, 'exhausted');
      assert.equal(spent.remaining_quota, 0);
      assert.equal((await row(t, ids.get(bad.plan432)!)).status, 'exhausted');
      for (const k of [bad.hang, bad.ratelimit, bad.error5xx, bad.malformed]) {
        const x = await row(t, ids.get(k)!);
        assert.equal(x.status, 'active', k);
        assert.equal(x.remaining_quota, null, k);
        assert.equal(x.last_refreshed_at, null, k);
        assert.ok(x.last_checked_at, k);
        assert.ok(x.last_error, k);
      }
      assert.match((await row(t, ids.get(bad.ratelimit)!)).last_error!, /retry after 60 s/);
    }));

  test('a failure keeps the figures and status it had', () =>
    withApp({}, async (t) => {
      const key = 'tvly-dev-sometimesdown1';
      const ids = await addKeys(t, [key]);
      await refresh(t);
      const before = await row(t, ids.get(key)!);
      assert.equal(before.remaining_quota, 1000 - defaultUsage(key).key.usage);
      up.fake.setKey(key, { kind: 'status', status: 503 });
      const r = await refresh(t);
      assert.equal(r.failed_count, 1);
      const afterRow = await row(t, ids.get(key)!);
      assert.equal(afterRow.remaining_quota, before.remaining_quota);
      assert.equal(afterRow.last_refreshed_at, before.last_refreshed_at);
      assert.equal(afterRow.status, 'active');
      assert.match(afterRow.last_error!, /503/);
      // Healthy again: the error clears.
      up.fake.setKey(key, { kind: 'ok', usage: { ...defaultUsage(key), key: { usage: 999, limit: 1000 } } });
      await refresh(t);
      const healed = await row(t, ids.get(key)!);
      assert.equal(healed.last_error, null);
      assert.equal(healed.remaining_quota, 1);
    }));

  test('a key the admin disabled stays disabled, with fresh figures', () =>
    withApp({}, async (t) => {
      const [good, spent] = ['tvly-dev-disabledgood1', 'tvly-dev-spent-disabled1'];
      const ids = await addKeys(t, [good, spent]);
      for (const k of [good, spent]) {
        const res = await t.app.inject({ method: 'PATCH', url: `/api/v1/admin/tavily-keys/${ids.get(k)}`, headers: t.auth, payload: { enabled: false } });
        assert.equal(res.statusCode, 200);
        assert.equal(res.json().status, 'disabled');
      }
      const r = await refresh(t);
      assert.equal(r.success_count, 2);
      for (const k of [good, spent]) {
        const res = await t.app.inject({ method: 'GET', url: `/api/v1/admin/tavily-keys/${ids.get(k)}`, headers: t.auth });
        assert.equal(res.json().status, 'disabled');
        assert.notEqual(res.json().remaining_quota, null);
      }
      const res = await t.app.inject({ method: 'PATCH', url: `/api/v1/admin/tavily-keys/${ids.get(spent)}`, headers: t.auth, payload: { enabled: true } });
      assert.equal(res.json().status, 'exhausted');
    }));

  test('never more than REFRESH_CONCURRENCY calls in flight, and all of them at once when allowed', async () => {
    const keys = manyKeys(40, 'conc');
    up.fake.latencyMs = 40;
    await withApp({ REFRESH_CONCURRENCY: '4' }, async (t) => {
      await addKeys(t, keys);
      up.fake.resetStats();
      up.fake.holdUsage(4, 5_000);
      const r = await refresh(t);
      assert.equal(r.success_count, 40);
      assert.equal(up.fake.stats.usageCalls, 40);
      assert.equal(up.fake.stats.maxInFlight, 4);
    });
    up.fake.resetStats();
    await withApp({ REFRESH_CONCURRENCY: '64' }, async (t) => {
      await addKeys(t, keys);
      up.fake.resetStats();
      // The fake holds the answers until all 40 are in flight (or 5 s have passed): a loaded
      // machine that is slow to send them cannot make the count smaller, a serial refresh can.
      up.fake.holdUsage(40, 5_000);
      await refresh(t);
      assert.equal(up.fake.stats.maxInFlight, 40, 'the calls run concurrently, not one after another');
    });
  });

  test('one read and exactly one write transaction per refresh, with batched statements', () =>
    withApp({}, async (t) => {
      await addKeys(t, [...manyKeys(300, 'tx'), 'tvly-dev-invalid-tx0001', 'tvly-dev-error5xx-tx001']);
      const s = t.ctx.parts.database.stats;
      const eventsBefore = (await t.ctx.parts.repos.alerts.listEvents({ limit: 100 })).events.length;
      const before = { ...s };
      const r = await refresh(t);
      const queries = s.queries - before.queries;
      assert.equal(r.total, 302);
      // The invalid key is one event: its row, and its deliveries (one statement for every sink).
      const events = (await t.ctx.parts.repos.alerts.listEvents({ limit: 100 })).events.length - eventsBefore;
      assert.equal(events, 1);
      assert.equal(s.transactions - before.transactions, 1);
      assert.equal(s.commits - before.commits, 1);
      assert.equal(s.rollbacks - before.rollbacks, 0);
      // One select, one update for the successes, one for the failures: not a statement per key.
      // The alerts add three reads in the transaction (to tell what changed: the keys stored as
      // not active, and the one written as invalid; the conditions that hold) and write nothing
      // but the event. The route writes the audit log's row (a refresh started) before it runs.
      // On PostgreSQL one more tells the other instances the outcomes (a single pg_notify
      // statement).
      assert.equal(queries - 2 * events, t.ctx.parts.bus.shared ? 8 : 7);
    }));

  test('a failing write rolls back: nothing is half-written', () =>
    withApp({}, async (t) => {
      const keys = manyKeys(12, 'rb');
      await addKeys(t, keys);
      const plugin = new FailNthUpdate(2);
      const failingDb = t.ctx.parts.database.db.withPlugin(plugin);
      // Small batches split the write into several statements; the second one fails.
      const repo = new KeyRepository(failingDb, t.ctx.parts.database.dialect, { batchRows: 5 });
      const refresher = new QuotaRefresher({
        db: failingDb,
        keys: repo,
        accounts: t.ctx.parts.repos.accounts,
        logs: t.ctx.parts.repos.logs,
        driftTolerance: 10,
        logRetentionMs: 30 * 86_400_000,
        cipher: t.ctx.parts.cipher,
        upstream: t.ctx.parts.tavily,
        concurrency: 8,
        timeoutMs: 1000,
        log: t.ctx.log,
      });
      const before = { ...t.ctx.parts.database.stats };
      await assert.rejects(refresher.refresh(), (err: unknown) => err instanceof RefreshWriteError && /nothing was written/.test(err.message));
      assert.equal(plugin.seen, 2, 'the first statement ran before the failure');
      assert.equal(t.ctx.parts.database.stats.rollbacks - before.rollbacks, 1);
      const list = await t.ctx.parts.repos.keys.list({ sort: 'created_at', order: 'asc', limit: 100 });
      for (const k of list.rows) {
        assert.equal(k.last_refreshed_at, null);
        assert.equal(k.remaining_quota, null);
      }
    }));

  test('the route answers a failed write with a clear 500', async () => {
    const t = await startTestApp(dialect, {
      tavilyBaseUrl: up.fake.url,
      prepare: (ctx) => {
        const failingDb = ctx.parts.database.db.withPlugin(new FailNthUpdate(1));
        const refresher = new QuotaRefresher({
          db: failingDb,
          keys: new KeyRepository(failingDb, ctx.parts.database.dialect),
          accounts: ctx.parts.repos.accounts,
          logs: ctx.parts.repos.logs,
          driftTolerance: 10,
          logRetentionMs: 30 * 86_400_000,
          cipher: ctx.parts.cipher,
          upstream: ctx.parts.tavily,
          concurrency: 4,
          timeoutMs: 1000,
          log: ctx.log,
        });
        const p = ctx.parts;
        ctx.services.keys = new KeyService({ keys: p.repos.keys, accounts: p.repos.accounts, logs: p.repos.logs, db: p.database.db, cipher: p.cipher, plainKeys: p.plainKeys, refresher, audit: ctx.audit, changes: p.changes, accountService: ctx.services.accounts, log: ctx.log });
      },
    });
    try {
      await addKeys(t, manyKeys(3, 'r5'));
      const res = await t.app.inject({ method: 'POST', url: '/api/v1/admin/tavily-keys/refresh-quota', headers: t.auth });
      assert.equal(res.statusCode, 500);
      assert.equal(res.json().error.code, 'refresh_write_failed');
      assert.match(res.json().error.message, /nothing was written/);
      const k = await t.ctx.parts.repos.keys.list({ sort: 'created_at', order: 'asc', limit: 10 });
      assert.ok(k.rows.every((r) => r.last_refreshed_at === null));
    } finally {
      await t.close();
    }
  });

  test('single-flight: concurrent requests share one run and one wave of calls', () =>
    withApp({}, async (t) => {
      const keys = manyKeys(20, 'sf');
      const ids = await addKeys(t, keys);
      up.fake.latencyMs = 100;
      up.fake.resetStats();
      const some = [...ids.values()].slice(0, 3);
      const pa = refresh(t);
      const pb = refresh(t);
      while (!t.ctx.parts.refresher.running) await new Promise((r) => setImmediate(r));
      const [a, b, c] = await Promise.all([pa, pb, refresh(t, { ids: some })]);
      assert.equal(up.fake.stats.usageCalls, 20);
      assert.deepEqual(a, b);
      assert.deepEqual(a, c, 'a request for keys the running refresh covers gets that run');
      assert.equal(a.total, 20);
    }));

  /** Ten keys at 60 ms; a refresh of two of them and, at once, `second`. */
  const besideTwoKeys = async (t: TestApp, prefix: string, second: RefreshRequest) => {
    const ids = await addKeys(t, manyKeys(10, prefix));
    up.fake.latencyMs = 60;
    up.fake.resetStats();
    const first = [...ids.values()].slice(0, 2);
    return Promise.all([t.ctx.parts.refresher.refresh({ ids: first }), t.ctx.parts.refresher.refresh(second)]);
  };

  test('a refresh of some keys under way: a refresh of every key checks the others beside it and answers for all, no key twice', () =>
    withApp({}, async (t) => {
      const [a, b] = await besideTwoKeys(t, 'sq', {});
      assert.equal(a.total, 2);
      assert.equal(b.total, 10, 'the answer counts the keys the other run checked');
      assert.equal(up.fake.stats.usageCalls, 10, 'each key once');
      assert.ok(b.started_at <= a.finished_at, 'started beside the first run, not after it');
      assert.deepEqual(t.ctx.parts.refresher.lastResult, b);
    }));

  test('a request of another kind than a plain refresh runs after the running one, not beside it', () =>
    withApp({}, async (t) => {
      const [a, b] = await besideTwoKeys(t, 'sw', { staleAfterS: 0 });
      assert.equal(a.total, 2);
      assert.equal(b.total, 10);
      assert.ok(b.started_at >= a.finished_at);
      assert.equal(up.fake.stats.usageCalls, 12);
    }));

  test('35 keys imported, 5 of them hanging, then POST /refresh-quota: it does not wait for the import’s check and run its own', (tc) =>
    withApp({ VALIDATE_ON_IMPORT: 'true', REFRESH_TIMEOUT_MS: '1500' }, async (t) => {
      const hung = Array.from({ length: 5 }, (_, i) => `tvly-dev-hang-0000000${i}`);
      await addKeys(t, [...hung, ...manyKeys(30, 'imp')]);
      // The import's answer has gone; its check of the new keys runs now.
      while (!t.ctx.parts.refresher.running) await new Promise((r) => setTimeout(r, 5));
      const r = await refresh(t);
      assert.equal(r.total, 35);
      assert.equal(r.failed_count, 5);
      assert.ok(r.failures.every((f) => /timed out after 1500 ms/.test(f.error)));
      for (const k of hung) assert.equal(up.fake.stats.callsByKey.get(k), 1, `${k} checked once, not again after the import's check`);
      tc.diagnostic(`answered in ${r.duration_ms} ms with REFRESH_TIMEOUT_MS=1500 (before: a timeout for the import's check, then another for its own)`);
    }));

  test('progress of a running refresh can be followed, and the last result read', () =>
    withApp({ REFRESH_CONCURRENCY: '2' }, async (t) => {
      await addKeys(t, manyKeys(6, 'pr'));
      const status = async () =>
        (await t.app.inject({ method: 'GET', url: '/api/v1/admin/tavily-keys/refresh-quota', headers: t.auth })).json();
      assert.deepEqual(await status(), { progress: { running: false, total: 0, done: 0, failed: 0, started_at: null }, last: null });
      up.fake.latencyMs = 80;
      const run = refresh(t);
      while (!t.ctx.parts.refresher.running) await new Promise((r) => setImmediate(r));
      let mid = await status();
      for (let i = 0; mid.progress.done === 0 && i < 200; i++) {
        // inject() can finish within microtasks: wait on a timer so the calls get to run.
        await new Promise((r) => setTimeout(r, 5));
        mid = await status();
      }
      assert.equal(mid.progress.running, true);
      assert.equal(mid.progress.total, 6);
      assert.ok(mid.progress.done < 6, 'seen before the end');
      const result = await run;
      const end = await status();
      assert.equal(end.progress.running, false);
      assert.equal(end.progress.done, 6);
      assert.deepEqual(end.last, result);
    }));

  test('ids and stale_after_s choose the keys', () =>
    withApp({}, async (t) => {
      const ids = await addKeys(t, manyKeys(5, 'st'));
      const two = [...ids.values()].slice(0, 2);
      assert.equal((await refresh(t, { ids: two })).total, 2);
      // The other three were never refreshed: stale.
      assert.equal((await refresh(t, { stale_after_s: 3600 })).total, 3);
      up.fake.resetStats();
      assert.equal((await refresh(t, { stale_after_s: 3600 })).total, 0);
      assert.equal(up.fake.stats.usageCalls, 0);
      assert.equal((await refresh(t, { stale_after_s: 0 })).total, 5);
    }));

  test('hung keys fail by timeout without holding the rest', () =>
    withApp({ REFRESH_CONCURRENCY: '2', REFRESH_TIMEOUT_MS: '200' }, async (t) => {
      const hung = ['tvly-dev-hang-00000001', 'tvly-dev-hang-00000002'];
      await addKeys(t, [...hung, ...manyKeys(6, 'hh')]);
      const r = await refresh(t);
      assert.equal(r.success_count, 6);
      assert.equal(r.failed_count, 2);
      assert.ok(r.failures.every((f) => /timed out after 200 ms/.test(f.error)));
    }));
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type GatewayCase, type TestApp, fakeUpstream, keysAndToken } from '../support/app.js';
import { describeEachDialect } from '../support/db.js';
import { type KeyBehaviour, defaultUsage } from '../support/fake-tavily.js';

/**
 * The gateway against an upstream that misbehaves: answers that break off, trickle, grow
 * huge, are not JSON, or report credits no request could cost. Each is an upstream failure
 * (the next key serves the request, and the request is logged), never a 500.
 */

type Ctx = GatewayCase;
const setup = keysAndToken;

const search = (c: Ctx, body: object = { query: 'hello' }) =>
  c.t.app.inject({ method: 'POST', url: '/search', headers: { authorization: `Bearer ${c.token}` }, payload: body });

/** Shortens the gateway's upstream deadline for a test (60 s in production). */
function upstreamDeadline(t: TestApp, ms: number): void {
  const fwd = t.ctx.parts.tavily.forward.bind(t.ctx.parts.tavily);
  t.ctx.parts.tavily.forward = (o) => fwd({ ...o, timeoutMs: o.timeoutMs === null ? null : ms });
}

async function logRows(t: TestApp) {
  await t.ctx.parts.outbox.flush();
  return t.ctx.parts.database.db.selectFrom('request_logs').select(['status', 'attempts', 'key_id', 'error', 'credits']).orderBy('id').execute();
}

describeEachDialect('the gateway against a misbehaving upstream', (dialect) => {
  const up = fakeUpstream(dialect);

  const brokenBodies: [string, KeyBehaviour][] = [
    ['reset mid-body', { kind: 'reset' }],
    ['a truncated chunked body', { kind: 'truncate' }],
    ['a body shorter than its Content-Length', { kind: 'short' }],
    ['a 200 that is an HTML page', { kind: 'html' }],
  ];
  for (const [what, behaviour] of brokenBodies) {
    test(`${what}: the next key serves the request, the first key rests but stays active, the request is logged`, () =>
      up.withApp({ KEY_STRATEGY: 'round-robin' }, async (t) => {
        const bad = `tvly-dev-broken-${behaviour.kind}-0001`;
        const good = `tvly-dev-broken-good-${behaviour.kind}1`;
        const c = await setup(t, [bad, good]);
        up.fake.setRequestBehaviour(bad, behaviour);
        up.fake.resetStats();
        const results = [await search(c), await search(c)];
        for (const r of results) assert.equal(r.statusCode, 200, r.body);
        // Round-robin would start the second request at the broken key, but it rests after its failure.
        assert.equal(up.fake.stats.requestsByKey.get(bad), 1, 'the broken key was tried once');
        const rows = await logRows(t);
        assert.equal(rows.length, 2);
        assert.deepEqual(rows.map((r) => r.key_id), [c.ids.get(good), c.ids.get(good)]);
        assert.deepEqual(rows.map((r) => r.attempts), [2, 1], 'the first request needed the second key; the second went to it at once');
        const broken = t.ctx.parts.pool.get(c.ids.get(bad)!)!;
        assert.equal(broken.health, 'active', 'a broken answer does not make the key invalid');
        assert.ok(broken.coolUntil > Date.now(), 'the key that failed rests');
      }));

    test(`${what} from every key: 503 naming the failure, and a log row`, () =>
      up.withApp({}, async (t) => {
        const bad = `tvly-dev-allbroken-${behaviour.kind}-01`;
        const c = await setup(t, [bad]);
        up.fake.setRequestBehaviour(bad, behaviour);
        const r = await search(c);
        assert.equal(r.statusCode, 503, r.body);
        assert.match(r.json().detail.error, behaviour.kind === 'html' ? /not JSON/ : /broke off/);
        const rows = await logRows(t);
        assert.equal(rows.length, 1);
        assert.equal(rows[0]!.status, 503);
        assert.equal(rows[0]!.attempts, 1);
      }));
  }

  test('an answer that trickles in is cut at the deadline for the whole answer, and the next key serves', () =>
    up.withApp({ KEY_STRATEGY: 'round-robin' }, async (t) => {
      const slow = 'tvly-dev-trickle-search01';
      const good = 'tvly-dev-trickle-good0001';
      const c = await setup(t, [slow, good]);
      // One byte every 20 ms: never a stall longer than undici's stall timers, but the whole
      // answer would take seconds. The deadline is 400 ms.
      up.fake.setRequestBehaviour(slow, { kind: 'trickle', intervalMs: 20 });
      upstreamDeadline(t, 400);
      const r1 = await search(c);
      const r2 = await search(c);
      assert.equal(r1.statusCode, 200, r1.body);
      assert.equal(r2.statusCode, 200, r2.body);
      const rows = await logRows(t);
      assert.deepEqual(rows.map((r) => r.attempts), [2, 1]);
      assert.ok(rows.every((r) => r.key_id === c.ids.get(good)));
      assert.equal(up.fake.stats.abandoned, 1, 'the trickling answer was abandoned');
    }));

  test('an answer larger than UPSTREAM_MAX_BODY_BYTES is refused and the next key serves', () =>
    up.withApp({ KEY_STRATEGY: 'round-robin', UPSTREAM_MAX_BODY_BYTES: '200000' }, async (t) => {
      const huge = 'tvly-dev-huge-answer0001';
      const good = 'tvly-dev-huge-good00001';
      const c = await setup(t, [huge, good]);
      up.fake.setRequestBehaviour(huge, { kind: 'huge', bytes: 20 * 1024 * 1024 });
      const r1 = await search(c);
      const r2 = await search(c);
      assert.equal(r1.statusCode, 200);
      assert.equal(r2.statusCode, 200);
      assert.deepEqual((await logRows(t)).map((r) => r.attempts), [2, 1]);
      assert.match(t.logs.text, /larger than UPSTREAM_MAX_BODY_BYTES/);
    }));

  test('credit figures outside the published range count the published cost', () =>
    up.withApp({}, async (t) => {
      const key = 'tvly-dev-oddcredits0001';
      const c = await setup(t, [key]);
      await t.app.inject({ method: 'POST', url: '/api/v1/admin/tavily-keys/refresh-quota', headers: t.auth, payload: {} });
      const before = t.ctx.parts.pool.get(c.ids.get(key)!)!.remaining!;
      for (const credits of [-1000, 1e308, 'abc', 3, 1]) {
        up.fake.setRequestBehaviour(key, { kind: 'credits', credits });
        const r = await search(c, { query: 'odd', include_usage: true });
        assert.equal(r.statusCode, 200, r.body);
      }
      const rows = await logRows(t);
      // −1000, 1e308, "abc" and 3 (a basic search costs at most 2) are not believed: 1 each.
      assert.deepEqual(rows.map((r) => r.credits), [1, 1, 1, 1, 1]);
      assert.equal(t.ctx.parts.pool.get(c.ids.get(key)!)!.remaining, before - 5);
      const tok = (await t.app.inject({ method: 'GET', url: '/api/v1/admin/tokens', headers: t.auth })).json().items[0];
      assert.equal(tok.month_spent, 5);
      assert.match(t.logs.text, /outside the published range/);
    }));

  test('refresh: a /usage answer that trickles in fails by REFRESH_TIMEOUT_MS', () =>
    up.withApp({ REFRESH_TIMEOUT_MS: '300' }, async (t) => {
      const key = 'tvly-dev-trickle-usage001';
      await setup(t, [key, 'tvly-dev-trickle-usageok1']);
      up.fake.setKey(key, { kind: 'trickle', intervalMs: 20 });
      const r = await t.app.inject({ method: 'POST', url: '/api/v1/admin/tavily-keys/refresh-quota', headers: t.auth, payload: {} });
      assert.equal(r.statusCode, 200);
      const body = r.json();
      assert.equal(body.success_count, 1);
      assert.equal(body.failures.length, 1);
      assert.match(body.failures[0].error, /timed out after 300 ms/);
    }));

  test('an upstream 400 that echoes a NUL from the query is logged cleaned, and the rows after it are written', () =>
    up.withApp({}, async (t) => {
      const key = 'tvly-dev-echonul0000001';
      const c = await setup(t, [key]);
      up.fake.setRequestBehaviour(key, { kind: 'status', status: 400, message: 'Invalid query: "abc\u0000def\ud800"' });
      const bad = await search(c, { query: 'abc\u0000def' });
      assert.equal(bad.statusCode, 400);
      up.fake.setRequestBehaviour(key, { kind: 'ok', usage: defaultUsage(key) });
      for (let i = 0; i < 21; i++) assert.equal((await search(c)).statusCode, 200);
      const rows = await logRows(t);
      assert.equal(rows.length, 22, 'every request is logged');
      assert.equal(rows[0]!.error, 'Invalid query: "abcdef\ufffd"');
      assert.equal(t.ctx.parts.outbox.health.failing, false);
      assert.equal(t.ctx.parts.outbox.stats.dropped, 0);
    }));
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { request } from 'undici';
import { type TestApp, fakeUpstream } from '../support/app.js';
import { describeEachDialect } from '../support/db.js';
import { defaultUsage } from '../support/fake-tavily.js';

interface Ctx {
  t: TestApp;
  token: string;
  ids: Map<string, number>;
}

/**
 * Adds the keys and a token. Only `refreshed` keys get figures from /usage: the others keep
 * an unknown quota, so that the gateway itself must discover what is wrong with them.
 */
async function setup(t: TestApp, keys: string[], tokenBody: object = { name: 'agent' }, refreshed: string[] = []): Promise<Ctx> {
  const add = await t.app.inject({ method: 'POST', url: '/api/v1/admin/tavily-keys', headers: t.auth, payload: { keys } });
  assert.equal(add.statusCode, 201, add.body);
  const ids = new Map<string, number>(add.json().items.map((i: { id: number }, n: number) => [keys[n]!, i.id]));
  if (refreshed.length > 0) {
    const r = await t.app.inject({ method: 'POST', url: '/api/v1/admin/tavily-keys/refresh-quota', headers: t.auth, payload: { ids: refreshed.map((k) => ids.get(k)!) } });
    assert.equal(r.json().success_count, refreshed.length);
    for (const k of refreshed) {
      // The gateway's in-memory pool has the refreshed figures, not only the database.
      assert.equal(t.ctx.parts.pool.get(ids.get(k)!)!.remaining, 1000 - defaultUsage(k).key.usage);
    }
  }
  const tok = await t.app.inject({ method: 'POST', url: '/api/v1/admin/tokens', headers: t.auth, payload: tokenBody });
  assert.equal(tok.statusCode, 201, tok.body);
  return { t, token: tok.json().token, ids };
}

const search = (c: Ctx, body: object = { query: 'hello' }, headers: Record<string, string> = {}) =>
  c.t.app.inject({ method: 'POST', url: '/search', headers: { authorization: `Bearer ${c.token}`, ...headers }, payload: body });

const keyRow = async (c: Ctx, key: string) => (await c.t.ctx.parts.repos.keys.getById(c.ids.get(key)!))!;

describeEachDialect('gateway failover and accounting', (dialect) => {
  const up = fakeUpstream(dialect);
  const withApp = up.withApp;

  test('200 searches over invalid, spent, rate-limited and flaky keys all succeed; statuses and credits come out exact', () =>
    withApp({ MAX_ATTEMPTS: '6' }, async (t) => {
      const good = ['tvly-dev-accgood000001', 'tvly-dev-accgood000002'];
      const bad = ['tvly-dev-invalid-acc001', 'tvly-dev-spent-acc00001', 'tvly-dev-ratelimit-acc01', 'tvly-dev-flaky-acc00001', 'tvly-dev-paygo433-acc01'];
      const c = await setup(t, [...good, ...bad], { name: 'agent' }, good);
      up.fake.resetStats();
      const results = [];
      for (let wave = 0; wave < 20; wave++) {
        results.push(...(await Promise.all(Array.from({ length: 10 }, (_, i) => search(c, { query: `q${wave}-${i}`, search_depth: i % 3 === 0 ? 'advanced' : 'basic' })))));
      }
      assert.equal(results.length, 200);
      for (const r of results) assert.equal(r.statusCode, 200, r.body);
      await t.ctx.parts.outbox.flush();

      assert.equal((await keyRow(c, bad[0]!)).status, 'invalid');
      assert.equal((await keyRow(c, bad[1]!)).status, 'exhausted');
      assert.equal((await keyRow(c, bad[4]!)).status, 'exhausted');
      assert.ok(t.ctx.parts.pool.get(c.ids.get(bad[2]!)!)!.coolUntil > Date.now(), 'the rate-limited key is cooling down');
      assert.equal((await keyRow(c, bad[2]!)).status, 'active', 'a 429 does not change the status');
      assert.equal((await keyRow(c, bad[3]!)).status, 'active', 'a 500 does not change the status');
      const logs = await t.ctx.parts.database.db.selectFrom('request_logs').selectAll().execute();
      // Every upstream call is one logged attempt: the failovers are all accounted for.
      assert.equal(up.fake.stats.requests.get('/search'), logs.reduce((s, l) => s + l.attempts, 0));
      assert.equal(logs.length, 200);
      assert.ok(logs.every((l) => l.status === 200));
      assert.ok(logs.some((l) => l.attempts > 1), 'some requests needed another key');
      const logged = logs.reduce((s, l) => s + l.credits, 0);
      assert.equal(logged, up.fake.totalCredits, 'the log holds exactly what Tavily billed');
      const tok = (await t.app.inject({ method: 'GET', url: '/api/v1/admin/tokens', headers: t.auth })).json().items[0];
      assert.equal(tok.month_spent, up.fake.totalCredits);
      for (const k of good) {
        const billed = up.fake.stats.creditsByKey.get(k) ?? 0;
        assert.ok(billed > 0, `${k} served requests`);
        assert.equal((await keyRow(c, k)).remaining_quota, 1000 - defaultUsage(k).key.usage - billed, `${k}: remaining = refreshed − billed`);
      }
    }));

  test('401 invalid, 432 and 433 exhausted, 429 cools for Retry-After: each fails over to a good key', () =>
    withApp({ KEY_STRATEGY: 'round-robin', MAX_ATTEMPTS: '5' }, async (t) => {
      const good = 'tvly-dev-fogood00000001';
      const c = await setup(t, ['tvly-dev-invalid-fo0001', 'tvly-dev-plan432-fo0001', 'tvly-dev-paygo433-fo001', 'tvly-dev-ratelimit-fo001', good]);
      up.fake.setRequestBehaviour('tvly-dev-ratelimit-fo001', { kind: 'status', status: 429, retryAfter: 30 });
      for (let i = 0; i < 5; i++) assert.equal((await search(c)).statusCode, 200);
      const counts = t.ctx.parts.pool.counts();
      assert.equal(counts.invalid, 1);
      assert.equal(counts.exhausted, 2);
      assert.equal(counts.cooling, 1);
      const cooled = t.ctx.parts.pool.get(c.ids.get('tvly-dev-ratelimit-fo001')!)!;
      assert.ok(cooled.coolUntil - Date.now() > 25_000 && cooled.coolUntil - Date.now() <= 30_000, 'cools for Retry-After');
      up.fake.resetStats();
      for (let i = 0; i < 5; i++) assert.equal((await search(c)).statusCode, 200);
      assert.equal(up.fake.stats.requests.get('/search'), 5, 'no more attempts on the bad keys');
      assert.deepEqual([...up.fake.stats.creditsByKey.keys()], [good]);
      // The rest is stored, and the admin view shows it.
      await t.ctx.parts.outbox.flush();
      const view = await t.app.inject({ method: 'GET', url: `/api/v1/admin/tavily-keys/${cooled.id}`, headers: t.auth });
      assert.equal(Date.parse(view.json().cooldown_until), cooled.coolUntil);
      const goodView = await t.app.inject({ method: 'GET', url: `/api/v1/admin/tavily-keys/${c.ids.get(good)}`, headers: t.auth });
      assert.equal(goodView.json().cooldown_until, null);
    }));

  test('the request log names each key a request failed over from, and what it answered; filters by status class', () =>
    withApp({ KEY_STRATEGY: 'round-robin', MAX_ATTEMPTS: '5' }, async (t) => {
      const keys = ['tvly-dev-invalid-lg0001', 'tvly-dev-error5xx-lg0001', 'tvly-dev-lggood00000001'];
      const c = await setup(t, keys);
      await t.app.inject({ method: 'PATCH', url: `/api/v1/admin/tavily-keys/${c.ids.get(keys[2]!)}`, headers: t.auth, payload: { label: 'the good one' } });
      assert.equal((await search(c)).statusCode, 200);
      const long = await search(c, { query: 'x'.repeat(401) });
      assert.equal(long.statusCode, 400);
      const list = async (q = '') => (await t.app.inject({ method: 'GET', url: `/api/v1/admin/logs?${q}`, headers: t.auth })).json().items;
      const [bad, ok] = await list();
      assert.equal(ok.status, 200);
      assert.equal(ok.key_id, c.ids.get(keys[2]!));
      assert.equal(ok.key_label, 'the good one');
      assert.match(ok.key_masked, /^tvly-dev-…/);
      assert.equal(ok.token_name, 'agent');
      assert.deepEqual(
        ok.failovers.map((f: { key_id: number; status: number | null; key_masked: string }) => [f.key_id, f.status, f.key_masked.endsWith(keys[f.key_id === c.ids.get(keys[0]!) ? 0 : 1]!.slice(-4))]),
        [[c.ids.get(keys[0]!), 401, true], [c.ids.get(keys[1]!), 500, true]],
      );
      assert.equal(bad.status, 400);
      assert.deepEqual(bad.failovers, [], 'the good key answered the second at once');
      assert.deepEqual((await list('status_class=errors')).map((r: { status: number }) => r.status), [400]);
      assert.deepEqual((await list('status_class=2xx')).map((r: { status: number }) => r.status), [200]);
      assert.deepEqual(await list('status_class=5xx'), []);
      // What a key failed: the requests that failed over from it, and its own error answers.
      const ids = (q: string) => list(q).then((rows: { id: number }[]) => rows.map((r) => r.id));
      assert.deepEqual(await ids(`failed_key_id=${c.ids.get(keys[0]!)}`), [ok.id]);
      assert.deepEqual(await ids(`failed_key_id=${c.ids.get(keys[1]!)}`), [ok.id]);
      assert.deepEqual(await ids(`failed_key_id=${c.ids.get(keys[2]!)}`), [bad.id]);
      const refused = await t.app.inject({ method: 'GET', url: '/api/v1/admin/logs?status_class=3xx', headers: t.auth });
      assert.equal(refused.statusCode, 400);
      assert.match(refused.json().error.message, /status_class/);
    }));

  test('5xx and timeouts move to another key without marking the key; a key is never invalid for a timeout', () =>
    withApp({ KEY_STRATEGY: 'round-robin' }, async (t) => {
      const c = await setup(t, ['tvly-dev-error5xx-fo0001', 'tvly-dev-hang-fo00000001', 'tvly-dev-fogood00000002']);
      // A short upstream timeout for this test: the hung key must not hold the request long.
      const fwd = t.ctx.parts.tavily.forward.bind(t.ctx.parts.tavily);
      t.ctx.parts.tavily.forward = (o) => fwd({ ...o, timeoutMs: o.timeoutMs === null ? null : 300 });
      for (let i = 0; i < 3; i++) {
        const r = await search(c);
        assert.equal(r.statusCode, 200, r.body);
      }
      await t.ctx.parts.outbox.flush();
      assert.equal((await keyRow(c, 'tvly-dev-error5xx-fo0001')).status, 'active');
      assert.equal((await keyRow(c, 'tvly-dev-hang-fo00000001')).status, 'active');
      const logs = await t.ctx.parts.database.db.selectFrom('request_logs').select('attempts').execute();
      assert.ok(logs.some((l) => l.attempts > 1));
    }));

  test('400, 403 and 404 go back unchanged, with no retry', () =>
    withApp({}, async (t) => {
      const c = await setup(t, ['tvly-dev-pass00000001', 'tvly-dev-pass00000002']);
      up.fake.resetStats();
      const long = await search(c, { query: 'x'.repeat(401) });
      assert.equal(long.statusCode, 400);
      assert.deepEqual(long.json(), { detail: { error: 'Query is too long. Max query length is 400 characters.' } });
      const crawl = await t.app.inject({ method: 'POST', url: '/crawl', headers: { authorization: `Bearer ${c.token}` }, payload: { url: 'https://unsupported.example' } });
      assert.equal(crawl.statusCode, 403);
      assert.equal(crawl.json().detail.error, 'URL is not supported');
      assert.equal(up.fake.stats.requests.get('/search'), 1);
      assert.equal(up.fake.stats.requests.get('/crawl'), 1);
      const unknown = await t.app.inject({ method: 'GET', url: '/research/no-such-task', headers: { authorization: `Bearer ${c.token}` } });
      assert.equal(unknown.statusCode, 404);
      assert.equal(unknown.json().detail.error, 'Research task not found.');
    }));

  test('no key able to serve: 503 saying why; MAX_ATTEMPTS bounds the keys tried', () =>
    withApp({ MAX_ATTEMPTS: '2' }, async (t) => {
      const c = await setup(t, ['tvly-dev-error5xx-na0001', 'tvly-dev-error5xx-na0002', 'tvly-dev-error5xx-na0003']);
      up.fake.resetStats();
      const r = await search(c);
      assert.equal(r.statusCode, 503);
      assert.match(r.json().detail.error, /every key tried failed .*500/);
      assert.equal(up.fake.stats.requests.get('/search'), 2);
      await t.app.inject({ method: 'POST', url: '/api/v1/admin/tavily-keys/bulk', headers: t.auth, payload: { action: 'disable', ids: [...c.ids.values()] } });
      const none = await search(c);
      assert.equal(none.statusCode, 503);
      assert.match(none.json().detail.error, /no key is available: 3 keys, 0 invalid, 0 exhausted, 3 disabled/);
      await t.ctx.parts.outbox.flush();
      const logged = await t.ctx.parts.database.db.selectFrom('request_logs').select(['status', 'attempts']).orderBy('id').execute();
      assert.deepEqual(logged, [{ status: 503, attempts: 2 }, { status: 503, attempts: 0 }], 'the log says how many keys each request tried');
    }));

  test('tokens: missing or unknown → 401, api_key in the body works and is not sent upstream', () =>
    withApp({}, async (t) => {
      const c = await setup(t, ['tvly-dev-tok000000001']);
      const none = await t.app.inject({ method: 'POST', url: '/search', payload: { query: 'x' } });
      assert.equal(none.statusCode, 401);
      assert.match(none.json().detail.error, /^tavily-pool: no client token: send Authorization: Bearer <client token>/);
      const wrong = await t.app.inject({ method: 'POST', url: '/search', headers: { authorization: 'Bearer tp_wrong' }, payload: { query: 'x' } });
      assert.equal(wrong.statusCode, 401);
      assert.match(wrong.json().detail.error, /^tavily-pool: unknown client token/);
      assert.equal(wrong.headers.connection, 'close', 'a client that is not one is not kept connected');
      const admin = await t.app.inject({ method: 'POST', url: '/search', headers: t.auth, payload: { query: 'x' } });
      assert.equal(admin.statusCode, 401);
      assert.match(admin.json().detail.error, /that is the admin token, which only opens \/api\/v1\/admin: use a client token/);
      const tavilyKey = await t.app.inject({ method: 'POST', url: '/search', payload: { query: 'x', api_key: 'tvly-dev-tok000000001' } });
      assert.equal(tavilyKey.statusCode, 401);
      assert.match(tavilyKey.json().detail.error, /that is a Tavily API key/);
      assert.equal(up.fake.stats.requests.size, 0, 'nothing reached Tavily');
      const legacy = await t.app.inject({ method: 'POST', url: '/search', payload: { query: 'x', api_key: c.token } });
      assert.equal(legacy.statusCode, 200, legacy.body);
      assert.equal((up.fake.stats.last!.body as Record<string, unknown>).api_key, undefined, 'api_key is removed');
      assert.equal(up.fake.stats.last!.headers.authorization, 'Bearer tvly-dev-tok000000001');
      const revoke = await t.app.inject({ method: 'DELETE', url: '/api/v1/admin/tokens/1', headers: t.auth });
      assert.ok(revoke.json().revoked_at);
      const revoked = await search(c);
      assert.equal(revoked.statusCode, 401, 'a revoked token is refused at once');
      assert.equal(revoked.json().detail.error, `tavily-pool: this client token was revoked on ${revoke.json().revoked_at.slice(0, 10)}.`);
    }));

  test('a spent monthly budget answers 432; an RPM limit answers 429 with Retry-After', () =>
    withApp({}, async (t) => {
      const c = await setup(t, ['tvly-dev-budget0000001'], { name: 'capped', monthly_budget: 3, rpm_limit: 1000 });
      assert.equal((await search(c, { query: 'a', search_depth: 'advanced' })).statusCode, 200); // 2 credits
      assert.equal((await search(c)).statusCode, 200); // 3: the budget is reached
      const over = await search(c);
      assert.equal(over.statusCode, 432);
      assert.match(over.json().detail.error, /monthly budget of 3 credits is used up/);
      assert.equal(up.fake.stats.requests.get('/search'), 2, 'a refused request does not reach Tavily');

      const tok = await t.app.inject({ method: 'POST', url: '/api/v1/admin/tokens', headers: t.auth, payload: { name: 'slow', rpm_limit: 2 } });
      const slow = { ...c, token: tok.json().token as string };
      assert.equal((await search(slow)).statusCode, 200);
      assert.equal((await search(slow)).statusCode, 200);
      const limited = await search(slow);
      assert.equal(limited.statusCode, 429);
      assert.ok(Number(limited.headers['retry-after']) >= 1);
      assert.match(limited.json().detail.error, /2 requests per minute/);
      await t.ctx.parts.outbox.flush();
      const refused = await t.ctx.parts.database.db.selectFrom('request_logs').select('status').where('status', 'in', [429, 432]).execute();
      assert.equal(refused.length, 2, 'refusals are logged too');
    }));

  test('a client hammering past its limits writes a row per token and reason, not a row per refusal', () =>
    withApp({}, async (t) => {
      const c = await setup(t, ['tvly-dev-hammer0000001'], { name: 'hammer', rpm_limit: 2 });
      const statuses = [];
      for (let i = 0; i < 400; i++) statuses.push((await search(c)).statusCode);
      assert.equal(statuses.filter((s) => s === 200).length, 2);
      assert.equal(statuses.filter((s) => s === 429).length, 398);
      const rows = await (async () => {
        await t.ctx.parts.outbox.flush();
        return t.ctx.parts.database.db.selectFrom('request_logs').select(['status', 'requests']).orderBy('id').execute();
      })();
      assert.deepEqual(rows, [
        { status: 200, requests: 1 },
        { status: 200, requests: 1 },
        { status: 429, requests: 398 },
      ]);
    }));

  test('bad input gets a Tavily-shaped 4xx naming the problem', () =>
    withApp({}, async (t) => {
      const c = await setup(t, ['tvly-dev-badin0000001']);
      const h = { authorization: `Bearer ${c.token}` };
      const cases: [string, { payload: string | object; headers?: Record<string, string> }, number, RegExp][] = [
        ['/search', { payload: '{"query": ', headers: { 'content-type': 'application/json' } }, 400, /not valid JSON/],
        ['/search', { payload: { query: 42 } }, 400, /body\.query must be string/],
        ['/search', { payload: {} }, 400, /missing the field "query"/],
        ['/extract', { payload: { urls: [1] } }, 400, /body\.urls/],
        ['/research', { payload: { input: 'x', stream: 'yes' } }, 400, /body\.stream must be boolean/],
        ['/search', { payload: `{"query":"${'x'.repeat(2 * 1024 * 1024)}"}`, headers: { 'content-type': 'application/json' } }, 413, /too large/],
        ['/search', { payload: 'query=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } }, 415, /Content-Type/],
      ];
      up.fake.resetStats();
      for (const [url, req, status, message] of cases) {
        const r = await t.app.inject({ method: 'POST', url, headers: { ...h, ...req.headers }, payload: req.payload as string });
        assert.equal(r.statusCode, status, `${url} ${r.body.slice(0, 200)}`);
        assert.match(r.json().detail.error, message);
      }
      assert.equal(up.fake.stats.requests.size, 0, 'nothing reached Tavily');
      const nowhere = await t.app.inject({ method: 'GET', url: '/nowhere' });
      assert.equal(nowhere.statusCode, 404);
      assert.match(nowhere.json().detail.error, /no route GET \/nowhere/);
    }));

  test('research stream: the first chunk reaches the client before the upstream stream ends', () =>
    withApp({}, async (t) => {
      const c = await setup(t, ['tvly-dev-stream0000001']);
      up.fake.streamIntervalMs = 150;
      const url = await t.app.listen({ port: 0, host: '127.0.0.1' });
      const res = await request(`${url}/research`, {
        method: 'POST',
        headers: { authorization: `Bearer ${c.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ input: 'stream me', stream: true }),
      });
      assert.equal(res.statusCode, 200);
      assert.match(String(res.headers['content-type']), /text\/event-stream/);
      const chunks: string[] = [];
      let firstAt = 0;
      for await (const chunk of res.body) {
        if (chunks.length === 0) {
          firstAt = Date.now();
          assert.equal(up.fake.stats.streamsEnded, 0, 'upstream is still streaming when the first chunk arrives');
        }
        chunks.push(String(chunk));
      }
      assert.ok(chunks.length >= 2, 'arrived in several chunks');
      assert.equal(up.fake.stats.streamsEnded, 1);
      assert.ok(firstAt > 0);
      assert.match(chunks.join(''), /event: done/);
      up.fake.streamIntervalMs = 50;
    }));
});

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { request } from 'undici';
import { type TestApp, startTestApp } from '../support/app.js';
import { describeEachDialect } from '../support/db.js';
import { FakeTavily } from '../support/fake-tavily.js';
import { until } from '../support/receiver.js';

describeEachDialect('admin: tokens, request log, stats', (dialect) => {
  let fake: FakeTavily;
  let t: TestApp;
  let token: string;
  let tokenId: number;
  let keyIds: number[];
  before(async () => {
    fake = await FakeTavily.start();
    t = await startTestApp(dialect, { tavilyBaseUrl: fake.url });
    const add = await t.app.inject({ method: 'POST', url: '/api/v1/admin/tavily-keys', headers: t.auth, payload: { keys: ['tvly-dev-adm000000001', 'tvly-dev-adm000000002'] } });
    keyIds = add.json().items.map((i: { id: number }) => i.id);
    const created = await t.app.inject({ method: 'POST', url: '/api/v1/admin/tokens', headers: t.auth, payload: { name: 'research bot', monthly_budget: 500, rpm_limit: 600 } });
    token = created.json().token;
    tokenId = created.json().item.id;
  });
  after(async () => {
    await t.close();
    await fake.close();
  });
  const admin = (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object) =>
    t.app.inject({ method, url: `/api/v1/admin${url}`, headers: t.auth, ...(payload ? { payload } : {}) });

  test('a token is shown once and stored hashed', async () => {
    assert.match(token, /^tp_[A-Za-z0-9_-]{43}$/);
    const list = (await admin('GET', '/tokens')).json().items;
    assert.equal(list.length, 1);
    assert.equal(list[0].name, 'research bot');
    assert.equal(list[0].token_prefix, `${token.slice(0, 7)}…`);
    assert.ok(!JSON.stringify(list).includes(token));
    const row = await t.ctx.parts.database.db.selectFrom('client_tokens').selectAll().executeTakeFirstOrThrow();
    assert.ok(!JSON.stringify(row).includes(token.slice(3)), 'the database holds only a hash');
  });

  test('token update and bad input', async () => {
    const r = await admin('PATCH', `/tokens/${tokenId}`, { monthly_budget: null, rpm_limit: 1200 });
    assert.equal(r.statusCode, 200);
    assert.equal(r.json().monthly_budget, null);
    assert.equal(r.json().rpm_limit, 1200);
    for (const [body, msg] of [
      [{}, /at least 1/],
      [{ rpm_limit: 0 }, /body\.rpm_limit/],
      [{ monthly_budget: '100' }, /body\.monthly_budget/],
      [{ secret: 'x' }, /unknown field "secret"/],
    ] as const) {
      const bad = await admin('PATCH', `/tokens/${tokenId}`, body);
      assert.equal(bad.statusCode, 400);
      assert.match(bad.json().error.message, msg);
    }
    assert.equal((await admin('POST', '/tokens', { name: '' })).statusCode, 400);
    assert.equal((await admin('GET', '/tokens/9999')).json().error.code, 'token_not_found');
  });

  test('the request log lists requests with filters and a cursor; stats add them up', async () => {
    for (let i = 0; i < 5; i++) {
      const r = await t.app.inject({ method: 'POST', url: '/search', headers: { authorization: `Bearer ${token}` }, payload: { query: `q${i}` } });
      assert.equal(r.statusCode, 200);
    }
    await t.app.inject({ method: 'POST', url: '/search', headers: { authorization: `Bearer ${token}` }, payload: { query: 'x'.repeat(500) } });
    await t.ctx.parts.outbox.flush();

    const page1 = (await admin('GET', '/logs?limit=4')).json();
    assert.equal(page1.items.length, 4);
    assert.ok(page1.next_cursor);
    const page2 = (await admin('GET', `/logs?limit=4&cursor=${page1.next_cursor}`)).json();
    assert.equal(page2.items.length, 2);
    assert.equal(page2.next_cursor, null);
    const all = [...page1.items, ...page2.items];
    assert.deepEqual(all.map((l: { id: number }) => l.id), [...all.map((l: { id: number }) => l.id)].sort((a, b) => b - a), 'newest first');
    assert.ok(all.every((l: { request_id: string | null; status: number }) => l.status !== 200 || l.request_id));
    const errors = (await admin('GET', '/logs?status=400')).json().items;
    assert.equal(errors.length, 1);
    assert.match(errors[0].error, /Query is too long/);
    assert.equal((await admin('GET', `/logs?token_id=${tokenId}&endpoint=search`)).json().items.length, 6);
    assert.equal((await admin('GET', '/logs?from=2999-01-01T00:00:00Z')).json().items.length, 0);
    assert.equal((await admin('GET', '/logs?endpoint=fly')).statusCode, 400);

    const stats = (await admin('GET', '/stats')).json();
    const hour = stats.by_hour.at(-1);
    assert.equal(hour.requests, 6);
    assert.equal(hour.errors, 1);
    assert.equal(hour.credits, 5);
    assert.equal(stats.by_day.at(-1).requests, 6);
    assert.equal(stats.by_token[0].token_name, 'research bot');
    assert.equal(stats.by_token[0].credits, 5);
    assert.equal(stats.by_key.reduce((s: number, k: { credits: number }) => s + k.credits, 0), 5);
    assert.ok(stats.by_key.every((k: { key_id: number }) => keyIds.includes(k.key_id)));
    assert.equal((await admin('GET', '/stats?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z')).statusCode, 400);
  });

  test('log retention prunes rows older than LOG_RETENTION_DAYS', async () => {
    const old = new Date(Date.now() - 31 * 24 * 3600_000).toISOString();
    await t.ctx.parts.database.db
      .insertInto('request_logs')
      .values({ ts: old, token_id: null, key_id: null, endpoint: 'search', status: 200, attempts: 1, latency_ms: 1, credits: 1, request_id: 'old', error: null })
      .execute();
    const before = (await admin('GET', '/logs?limit=1000')).json().items.length;
    assert.equal(await t.ctx.parts.prune(), 1);
    assert.equal((await admin('GET', '/logs?limit=1000')).json().items.length, before - 1);
  });

  test('a client that disconnects cancels its upstream request', async () => {
    fake.latencyMs = 2000;
    fake.resetStats();
    const url = await t.app.listen({ port: 0, host: '127.0.0.1' });
    const ac = new AbortController();
    const pending = request(`${url}/search`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ query: 'slow' }),
      signal: ac.signal,
    });
    while ((fake.stats.requests.get('/search') ?? 0) === 0) await new Promise((r) => setTimeout(r, 10));
    ac.abort();
    await assert.rejects(pending);
    await until(() => fake.stats.abandoned > 0, 'the upstream request to be cancelled');
    assert.equal(fake.stats.abandoned, 1, 'the upstream request was cancelled');
    fake.latencyMs = 0;
  });
});

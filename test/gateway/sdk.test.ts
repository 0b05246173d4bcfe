import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { tavily } from '@tavily/core';
import { type TestApp, startTestApp } from '../support/app.js';
import { describeEachDialect } from '../support/db.js';
import { FakeTavily } from '../support/fake-tavily.js';

const POOL = ['tvly-dev-sdkpool00000001', 'tvly-dev-sdkpool00000002', 'tvly-dev-sdkpool00000003'];

describeEachDialect('official SDK (@tavily/core) through the gateway', (dialect) => {
  let fake: FakeTavily;
  let t: TestApp;
  let token: string;
  let client: ReturnType<typeof tavily>;
  before(async () => {
    fake = await FakeTavily.start();
    t = await startTestApp(dialect, { tavilyBaseUrl: fake.url });
    const add = await t.app.inject({ method: 'POST', url: '/api/v1/admin/tavily-keys?validate=true', headers: t.auth, payload: { keys: POOL } });
    assert.equal(add.json().added, 3);
    const created = await t.app.inject({ method: 'POST', url: '/api/v1/admin/tokens', headers: t.auth, payload: { name: 'sdk' } });
    assert.equal(created.statusCode, 201, created.body);
    token = created.json().token;
    const url = await t.app.listen({ port: 0, host: '127.0.0.1' });
    client = tavily({ apiKey: token, apiBaseURL: url });
    fake.resetStats();
  });
  after(async () => {
    await t.close();
    await fake.close();
  });

  const lastKeyUsed = () => /^Bearer (\S+)$/.exec(String(fake.stats.last?.headers.authorization))?.[1];

  test('search: the pool key goes upstream, usage only when asked', async () => {
    const r = await client.search('what is a key pool', { searchDepth: 'advanced' });
    assert.equal(r.results.length, 3);
    assert.equal(r.query, 'what is a key pool');
    assert.equal((r as { usage?: unknown }).usage, undefined, 'usage is removed when the client did not ask');
    assert.ok(POOL.includes(lastKeyUsed()!), 'Tavily saw a pool key, not the client token');
    assert.equal((fake.stats.last!.body as { include_usage?: boolean }).include_usage, true, 'the gateway asks upstream for usage');
    const withUsage = await client.search('again', { includeUsage: true });
    assert.deepEqual((withUsage as { usage?: unknown }).usage, { credits: 1 });
  });

  test('extract, crawl and map', async () => {
    const ex = await client.extract(['https://example.com/a', 'https://example.com/b']);
    assert.equal(ex.results.length, 2);
    const crawl = await client.crawl('https://example.com');
    assert.equal(crawl.results.length, 3);
    const map = await client.map('https://example.com');
    assert.deepEqual(map.results, ['https://example.com/page1', 'https://example.com/page2', 'https://example.com/page3']);
  });

  test('research: created with one key, polled through the same key', async () => {
    const created = (await client.research('the history of search engines')) as { requestId: string };
    assert.ok(created.requestId);
    const creator = lastKeyUsed();
    const done = await client.getResearch(created.requestId);
    assert.equal(done.status, 'completed');
    assert.equal(lastKeyUsed(), creator, 'the poll used the key that created the task');
  });

  test('research stream arrives as events', async () => {
    const stream = (await client.research('streams', { stream: true })) as AsyncGenerator<Buffer>;
    let text = '';
    for await (const chunk of stream) text += chunk.toString();
    assert.match(text, /chat\.completion\.chunk/);
    assert.match(text, /event: done/);
  });

  test('a wrong token shows the gateway’s message in the SDK', async () => {
    const bad = tavily({ apiKey: 'tp_not-a-real-token', apiBaseURL: `http://127.0.0.1:${(t.app.server.address() as { port: number }).port}` });
    await assert.rejects(bad.search('x'), /tavily-pool: unknown client token/);
  });

  test('every credit Tavily billed is accounted to the keys and the token', async () => {
    await t.ctx.parts.outbox.flush();
    const logs = await t.ctx.parts.database.db.selectFrom('request_logs').selectAll().execute();
    const logged = logs.reduce((s, r) => s + r.credits, 0);
    assert.ok(fake.totalCredits > 0);
    assert.equal(logged, fake.totalCredits);
    const tok = (await t.app.inject({ method: 'GET', url: '/api/v1/admin/tokens', headers: t.auth })).json().items[0];
    assert.equal(tok.month_spent, fake.totalCredits);
    const usage = (await (await fetch(`http://127.0.0.1:${(t.app.server.address() as { port: number }).port}/usage`, { headers: { authorization: `Bearer ${token}` } })).json()) as { key: { usage: number; search_usage: number } };
    assert.equal(usage.key.usage, fake.totalCredits);
    assert.equal(usage.key.search_usage, 3);
  });

  // After the accounting test above, whose counts these would change.
  test('feedback() goes to the key that served the request it names, free of charge', async () => {
    const served = await client.search('feedback target');
    const servedBy = lastKeyUsed();
    const credits = fake.totalCredits;
    const r = await client.feedback({ requestId: served.requestId, agentScore: 4, comment: 'useful' });
    assert.equal(r.success, true);
    assert.ok(r.feedbackId);
    assert.equal(lastKeyUsed(), servedBy, 'sent with the key that served the request');
    assert.equal(fake.stats.feedbackByKey.get(servedBy!), 1);
    assert.deepEqual((fake.stats.last!.body as Record<string, unknown>).agent_score, 4);
    assert.equal(fake.totalCredits, credits, 'feedback costs nothing');
    // Feedback on a request the gateway does not know goes with any key.
    assert.equal((await client.feedback({ requestId: 'not-one-of-ours', humanScore: 1 })).success, true);
    await t.ctx.parts.outbox.flush();
    const rows = await t.ctx.parts.database.db.selectFrom('request_logs').select(['endpoint', 'credits', 'status']).where('endpoint', '=', 'feedback').execute();
    assert.deepEqual(rows, [
      { endpoint: 'feedback', credits: 0, status: 200 },
      { endpoint: 'feedback', credits: 0, status: 200 },
    ]);
  });

  test('a base URL with a trailing slash works (the SDK then calls //search)', async () => {
    const slash = tavily({ apiKey: token, apiBaseURL: `http://127.0.0.1:${(t.app.server.address() as { port: number }).port}/` });
    const r = await slash.search('trailing slash');
    assert.equal(r.query, 'trailing slash');
    const created = (await slash.research('slashes')) as { requestId: string };
    assert.equal(((await slash.getResearch(created.requestId)) as { status: string }).status, 'completed');
  });

});

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AnswerCache, cacheKey, stableJson, withUsage } from '../../src/gateway/cache.js';
import { type TestApp, fakeUpstream, keysAndToken } from '../support/app.js';
import { describeEachDialect } from '../support/db.js';
import { connect } from '../support/mcp.js';

type Row = { endpoint: string; status: number; credits: number; cache: string | null; credits_saved: number; key_id: number | null };

async function rows(t: TestApp): Promise<Row[]> {
  await t.ctx.parts.outbox.flush();
  return (await t.ctx.parts.database.db.selectFrom('request_logs').select(['endpoint', 'status', 'credits', 'cache', 'credits_saved', 'key_id']).orderBy('id').execute()) as Row[];
}

const search = (t: TestApp, token: string, body: object, headers: Record<string, string> = {}) =>
  t.app.inject({ method: 'POST', url: '/search', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...headers }, payload: body });

async function tokenSpent(t: TestApp, token: string): Promise<number> {
  const list = await t.app.inject({ method: 'GET', url: '/api/v1/admin/tokens', headers: t.auth });
  return list.json().items.find((i: { token_prefix: string }) => token.startsWith(i.token_prefix.replace('…', ''))).month_spent;
}

describeEachDialect('the answer cache', (dialect) => {
  const up = fakeUpstream(dialect);

  test('an identical search within the TTL is served from the cache: free, logged as a hit with the credits saved', () =>
    up.withApp({}, async (t) => {
      const { token } = await keysAndToken(t, ['tvly-dev-cache00000001'], { name: 'cached', cache_ttl_s: 600 });
      const first = await search(t, token, { query: 'rust async', search_depth: 'advanced', max_results: 3 });
      assert.equal(first.statusCode, 200);
      assert.equal(first.headers['x-tavily-pool-cache'], 'miss');
      // The same request, its fields in another order and a choice in another case.
      const second = await search(t, token, { max_results: '3', search_depth: 'Advanced', query: 'rust async' });
      assert.equal(second.statusCode, 200);
      assert.equal(second.headers['x-tavily-pool-cache'], 'hit');
      assert.deepEqual(second.json(), first.json(), 'the same answer');
      assert.equal(up.fake.stats.requests.get('/search'), 1, 'Tavily was asked once');
      // Asked with usage: a hit cost nothing, and says so.
      const withU = await search(t, token, { query: 'rust async', search_depth: 'advanced', max_results: 3, include_usage: true });
      assert.deepEqual(withU.json().usage, { credits: 0 });
      const other = await search(t, token, { query: 'rust async', max_results: 3 });
      assert.equal(other.headers['x-tavily-pool-cache'], 'miss', 'another body is another answer');
      assert.equal(up.fake.stats.requests.get('/search'), 2);

      const logged = await rows(t);
      assert.deepEqual(
        logged.map((r) => [r.cache, r.credits, r.credits_saved, r.key_id === null]),
        [
          ['miss', 2, 0, false],
          ['hit', 0, 2, true],
          ['hit', 0, 2, true],
          ['miss', 1, 0, false],
        ],
      );
      assert.equal(await tokenSpent(t, token), 3, 'the token paid for the two misses only');
      const metrics = await t.ctx.metrics!.registry.getMetricsAsJSON();
      const saved = metrics.find((m) => m.name === 'tavily_pool_cache_saved_credits_total')!.values;
      assert.deepEqual(saved.map((v) => [v.labels.endpoint, v.value]), [['search', 4]]);
      const hits = metrics.find((m) => m.name === 'tavily_pool_cache_requests_total')!.values.filter((v) => v.labels.result === 'hit');
      assert.equal(hits[0]!.value, 2);
      const summary = (await t.app.inject({ method: 'GET', url: '/api/v1/admin/summary', headers: t.auth })).json();
      assert.deepEqual(summary.cache, { hits_7d: 2, joined_7d: 0, saved_7d: 4 });
    }));

  test('identical requests in flight wait for the first one’s answer: one call to Tavily, the others joined and free', () =>
    up.withApp({}, async (t) => {
      const { token } = await keysAndToken(t, ['tvly-dev-cache00000002'], { name: 'agents', cache_ttl_s: 60 });
      up.fake.latencyMs = 1000; // long enough for all six to arrive while the first is in flight, on a loaded machine too
      const answers = await Promise.all(Array.from({ length: 6 }, () => search(t, token, { query: 'same question' })));
      assert.deepEqual(answers.map((a) => a.statusCode), [200, 200, 200, 200, 200, 200]);
      assert.equal(up.fake.stats.requests.get('/search'), 1);
      const kinds = answers.map((a) => a.headers['x-tavily-pool-cache']).sort();
      assert.deepEqual(kinds, ['joined', 'joined', 'joined', 'joined', 'joined', 'miss']);
      const logged = await rows(t);
      assert.equal(logged.filter((r) => r.cache === 'joined' && r.credits === 0 && r.credits_saved === 1).length, 5);
      assert.equal(await tokenSpent(t, token), 1);
    }));

  test('a bypass header, and a token without a cache, call Tavily every time', () =>
    up.withApp({}, async (t) => {
      const { token } = await keysAndToken(t, ['tvly-dev-cache00000003'], { name: 'cached', cache_ttl_s: 600 });
      const plain = (await t.app.inject({ method: 'POST', url: '/api/v1/admin/tokens', headers: t.auth, payload: { name: 'plain' } })).json().token as string;
      const off = (await t.app.inject({ method: 'POST', url: '/api/v1/admin/tokens', headers: t.auth, payload: { name: 'off', cache_ttl_s: 0 } })).json().token as string;
      await search(t, token, { query: 'q' });
      for (let i = 0; i < 3; i++) {
        const r = await search(t, token, { query: 'q' }, { 'x-tavily-pool-cache': 'bypass' });
        assert.equal(r.headers['x-tavily-pool-cache'], 'bypass');
      }
      for (const tok of [plain, off]) {
        for (let i = 0; i < 3; i++) {
          const r = await search(t, tok, { query: 'q' });
          assert.equal(r.statusCode, 200);
          assert.equal(r.headers['x-tavily-pool-cache'], undefined, 'no cache, no header');
        }
      }
      assert.equal(up.fake.stats.requests.get('/search'), 1 + 3 + 6);
      const logged = await rows(t);
      assert.deepEqual(logged.map((r) => r.cache), ['miss', 'bypass', 'bypass', 'bypass', null, null, null, null, null, null]);
      assert.ok(logged.every((r) => r.credits === 1 && r.credits_saved === 0));
    }));

  test('research and failures are never cached', () =>
    up.withApp({}, async (t) => {
      const { token } = await keysAndToken(t, ['tvly-dev-cache00000004'], { name: 'cached', cache_ttl_s: 600 });
      const post = (url: string, body: object) => t.app.inject({ method: 'POST', url, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, payload: body });
      for (let i = 0; i < 2; i++) assert.equal((await post('/research', { input: 'the same report', model: 'mini' })).statusCode, 201);
      assert.equal(up.fake.stats.requests.get('/research'), 2);
      // Tavily refuses max_results past 20: its 400 is the request's answer, and is not kept.
      for (let i = 0; i < 2; i++) {
        const r = await search(t, token, { query: 'too many', max_results: 25 });
        assert.equal(r.statusCode, 400);
        assert.equal(r.headers['x-tavily-pool-cache'], undefined);
      }
      assert.equal(up.fake.stats.requests.get('/search'), 2);
      assert.equal(t.ctx.parts.cache?.size ?? 0, 0, 'nothing stored');
    }));

  test('MCP: a retried tool call is served from the cache by default (MCP_CACHE_TTL_S); a token with cache_ttl_s 0 is not', () =>
    up.withApp({}, async (t) => {
      const { token } = await keysAndToken(t, ['tvly-dev-cache00000005'], { name: 'claude' });
      const off = (await t.app.inject({ method: 'POST', url: '/api/v1/admin/tokens', headers: t.auth, payload: { name: 'off', cache_ttl_s: 0 } })).json().token as string;
      const url = await t.app.listen({ port: 0, host: '127.0.0.1' });
      for (const [tok, calls] of [
        [token, 1],
        [off, 3],
      ] as const) {
        up.fake.resetStats();
        const client = await connect(url, tok);
        try {
          for (let i = 0; i < 3; i++) {
            const r = await client.callTool({ name: 'tavily_search', arguments: { query: `retried ${tok === off}` } });
            assert.equal(r.isError, undefined, JSON.stringify(r));
          }
        } finally {
          await client.close();
        }
        assert.equal(up.fake.stats.requests.get('/search'), calls);
      }
      const logged = await rows(t);
      assert.deepEqual(logged.map((r) => r.cache), ['miss', 'hit', 'hit', null, null, null]);
    }));
});

describe('the answer cache’s store', () => {
  test('stays within CACHE_MAX_BYTES with 100,000 distinct answers, the least recently used going first', () => {
    const max = 4 * 1024 * 1024;
    const cache = new AnswerCache({ maxBytes: max, maxEntryBytes: 64 * 1024, maxTtlMs: 3600_000 });
    const answer = (i: number) => ({ text: JSON.stringify({ query: `q${i}`, results: [{ title: 'x'.repeat(400), url: `https://example.com/${i}` }] }), credits: 1, requestId: `r${i}`, storedAt: 1_000 });
    let peak = 0;
    for (let i = 0; i < 100_000; i++) {
      cache.set(`search q${i}`, answer(i));
      peak = Math.max(peak, cache.bytes);
      // The first entry is used often: it stays.
      if (i % 100 === 0) assert.ok(cache.get('search q0', 3600_000, 2_000), `the much-used entry is kept (at ${i})`);
    }
    assert.ok(peak <= max, `peak ${peak} within ${max}`);
    assert.ok(cache.size > 1000 && cache.size < 100_000, `${cache.size} kept`);
    assert.ok(cache.get('search q99999', 3600_000, 2_000), 'the newest is there');
    assert.equal(cache.get('search q5', 3600_000, 2_000), null, 'an old one went');
    // What it counts is at least what its strings take.
    const sample = answer(1);
    assert.ok(cache.bytes >= cache.size * (sample.text.length + 'search q1'.length));
  });

  test('an answer past the entry limit is not stored; the TTL asked and CACHE_MAX_TTL_S both bound a hit', () => {
    const cache = new AnswerCache({ maxBytes: 1024 * 1024, maxEntryBytes: 10_000, maxTtlMs: 60_000 });
    assert.equal(cache.set('big', { text: 'x'.repeat(6000), credits: 1, requestId: null, storedAt: 0 }), false);
    assert.equal(cache.size, 0);
    cache.set('k', { text: '{"a":1}', credits: 1, requestId: null, storedAt: 0 });
    assert.ok(cache.get('k', 30_000, 20_000));
    assert.equal(cache.get('k', 10_000, 20_000), null, 'older than this token’s TTL');
    assert.ok(cache.get('k', 30_000, 25_000), 'still there for a token with a longer TTL');
    assert.equal(cache.get('k', 600_000, 61_000), null, 'past CACHE_MAX_TTL_S: gone');
    assert.equal(cache.size, 0);
  });

  test('keys: field order and include_usage do not matter; usage is added as 0 when asked', () => {
    assert.equal(cacheKey('search', { query: 'a', max_results: 3, include_usage: true }), cacheKey('search', { max_results: 3, query: 'a' }));
    assert.notEqual(cacheKey('search', { query: 'a' }), cacheKey('extract', { query: 'a' }));
    assert.equal(stableJson({ b: [{ d: 1, c: 2 }], a: null }), '{"a":null,"b":[{"c":2,"d":1}]}');
    assert.equal(withUsage('{"results":[]}', true), '{"results":[],"usage":{"credits":0}}');
    assert.equal(withUsage('{}', true), '{"usage":{"credits":0}}');
    assert.equal(withUsage('{"a":1}', false), '{"a":1}');
  });
});

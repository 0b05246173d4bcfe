import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { type TestApp, fakeUpstream, keysAndToken } from '../support/app.js';
import { describeEachDialect } from '../support/db.js';
import { connect, text } from '../support/mcp.js';

const KEYS = ['tvly-dev-scopekey000001', 'tvly-dev-scopekey000002'];

async function token(t: TestApp, body: object): Promise<{ id: number; token: string }> {
  const r = await t.app.inject({ method: 'POST', url: '/api/v1/admin/tokens', headers: t.auth, payload: body });
  assert.equal(r.statusCode, 201, r.body);
  return { id: r.json().item.id, token: r.json().token };
}

describeEachDialect('scoped client tokens', (dialect) => {
  const up = fakeUpstream(dialect);
  const post = (t: TestApp, tok: string, url: string, payload: object, headers: Record<string, string> = {}) =>
    t.app.inject({ method: 'POST', url, headers: { authorization: `Bearer ${tok}`, ...headers }, payload });
  const upstream = (endpoint: string) => up.fake.stats.requests.get(`/${endpoint}`) ?? 0;

  test('a search-only token is refused research and extract, through REST and MCP, before any key is spent', () =>
    up.withApp({}, async (t) => {
      await keysAndToken(t, KEYS);
      const s = await token(t, { name: 'search only', endpoints: ['search'] });
      assert.equal((await post(t, s.token, '/search', { query: 'allowed' })).statusCode, 200);
      for (const [url, payload] of [
        ['/extract', { urls: ['https://example.com'] }],
        ['/research', { input: 'a topic' }],
      ] as const) {
        const r = await post(t, s.token, url, payload);
        assert.equal(r.statusCode, 403, r.body);
        assert.match(r.json().detail.error, /may not use (extract|research) \(it may use: search\)/);
      }
      const listen = await t.app.listen({ port: 0, host: '127.0.0.1' });
      const client = await connect(listen, s.token);
      try {
        const { tools } = await client.listTools();
        assert.deepEqual(tools.map((x) => x.name), ['tavily_search'], 'only the tools it may use are listed');
        const r = (await client.callTool({ name: 'tavily_extract', arguments: { urls: ['https://example.com'] } })) as CallToolResult;
        assert.equal(r.isError, true);
        assert.match(text(r), /may not use extract/);
        const ok = (await client.callTool({ name: 'tavily_search', arguments: { query: 'via mcp' } })) as CallToolResult;
        assert.notEqual(ok.isError, true, text(ok));
      } finally {
        await client.close();
      }
      assert.equal(upstream('extract'), 0);
      assert.equal(upstream('research'), 0);
      assert.equal(upstream('search'), 2);

      // Each refusal is logged with its reason, on the token's rows.
      await t.ctx.parts.outbox.flush();
      const logs = await t.app.inject({ method: 'GET', url: `/api/v1/admin/logs?token_id=${s.id}&status=403`, headers: t.auth });
      const rows = logs.json().items as Array<{ endpoint: string; error: string; requests: number; via: string }>;
      assert.deepEqual(rows.map((r) => [r.endpoint, r.via]).sort(), [
        ['extract', 'mcp'],
        ['extract', 'rest'],
        ['research', 'rest'],
      ]);
      assert.ok(rows.every((r) => /may not use/.test(r.error)));
    }));

  test('a token limited to 10.0.0.0/8 is refused from 127.0.0.1, and served when a trusted proxy says 10.1.2.3', async () => {
    await up.withApp({ TRUSTED_PROXIES: '127.0.0.1' }, async (t) => {
      await keysAndToken(t, KEYS);
      const n = await token(t, { name: 'office', networks: ['10.0.0.0/8', '2001:db8::/32'] });
      const direct = await post(t, n.token, '/search', { query: 'q' });
      assert.equal(direct.statusCode, 403);
      assert.match(direct.json().detail.error, /may not be used from 127\.0\.0\.1 \(its networks: 10\.0\.0\.0\/8, 2001:db8::\/32\)/);
      assert.equal((await post(t, n.token, '/search', { query: 'q' }, { 'x-forwarded-for': '10.1.2.3' })).statusCode, 200);
      assert.equal((await post(t, n.token, '/search', { query: 'q' }, { 'x-forwarded-for': '2001:db8::7' })).statusCode, 200);
      assert.equal((await post(t, n.token, '/search', { query: 'q' }, { 'x-forwarded-for': '11.1.2.3' })).statusCode, 403);
      assert.equal(upstream('search'), 2);
    });
    // Without TRUSTED_PROXIES, X-Forwarded-For is anybody's word: not believed.
    await up.withApp({}, async (t) => {
      await keysAndToken(t, KEYS);
      const n = await token(t, { name: 'office', networks: ['10.0.0.0/8'] });
      assert.equal((await post(t, n.token, '/search', { query: 'q' }, { 'x-forwarded-for': '10.1.2.3' })).statusCode, 403);
    });
  });

  test('an expired token is refused, saying so', () =>
    up.withApp({}, async (t) => {
      await keysAndToken(t, KEYS);
      const e = await token(t, { name: 'short-lived', expires_at: new Date(Date.now() + 1500).toISOString() });
      assert.equal((await post(t, e.token, '/search', { query: 'before' })).statusCode, 200);
      await new Promise((r) => setTimeout(r, 1600));
      const r = await post(t, e.token, '/search', { query: 'after' });
      assert.equal(r.statusCode, 401);
      assert.match(r.json().detail.error, /this client token expired at \d{4}-/);
      assert.equal(upstream('search'), 1);
    }));

  test('cost caps refuse an advanced search, too many results and pro research before any upstream call', () =>
    up.withApp({}, async (t) => {
      await keysAndToken(t, KEYS);
      const c = await token(t, { name: 'capped', caps: { advanced: false, max_results: 10, research_pro: false } });
      const refused = [
        ['/search', { query: 'q', search_depth: 'advanced' }, /may not make "advanced" requests/],
        ['/extract', { urls: ['https://example.com'], extract_depth: 'advanced' }, /may not make "advanced" requests/],
        ['/search', { query: 'q', max_results: 20 }, /at most 10 results \(max_results 20\)/],
        ['/research', { input: 'q', model: 'pro' }, /may not start research with the pro model/],
      ] as const;
      for (const [url, payload, message] of refused) {
        const r = await post(t, c.token, url, payload);
        assert.equal(r.statusCode, 403, `${url} ${JSON.stringify(payload)}: ${r.body}`);
        assert.match(r.json().detail.error, message);
      }
      assert.equal(upstream('search') + upstream('extract') + upstream('research'), 0, 'the fake saw none of them');
      assert.equal((await post(t, c.token, '/search', { query: 'q', max_results: 10 })).statusCode, 200);

      const m = await token(t, { name: 'one credit', caps: { max_credits: 1 } });
      const adv = await post(t, m.token, '/search', { query: 'q', search_depth: 'advanced' });
      assert.equal(adv.statusCode, 403);
      assert.match(adv.json().detail.error, /may cost up to 2 credits .* at most 1/);
      assert.equal((await post(t, m.token, '/search', { query: 'q' })).statusCode, 200);
      assert.equal(upstream('search'), 2);
      // The refusals spent nothing of the budget.
      const list = (await t.app.inject({ method: 'GET', url: '/api/v1/admin/tokens', headers: t.auth })).json().items as Array<{ name: string; month_spent: number; caps: unknown }>;
      assert.equal(list.find((x) => x.name === 'capped')!.month_spent, 1);
      assert.deepEqual(list.find((x) => x.name === 'capped')!.caps, { advanced: false, max_results: 10, research_pro: false });
    }));

  test('the scopes API names what is wrong, and scopes can be changed and removed', () =>
    up.withApp({}, async (t) => {
      const bad: Array<[object, RegExp]> = [
        [{ name: 'x', endpoints: ['search', 'teleport'] }, /body\.endpoints\[1\] must be one of: search, extract, crawl, map, research, feedback/],
        [{ name: 'x', networks: ['10.0.0.0/8', '10.0.0.0/33'] }, /body\.networks\[1\]: "10\.0\.0\.0\/33": the prefix length must be 0 to 32/],
        [{ name: 'x', networks: ['example.com'] }, /body\.networks\[0\]: "example\.com" is not an IPv4 or IPv6 network/],
        [{ name: 'x', expires_at: '2001-01-01T00:00:00Z' }, /body\.expires_at is in the past/],
        [{ name: 'x', caps: { max_results: 0 } }, /body\.caps\.max_results must be >= 1/],
        [{ name: 'x', caps: { cheap: true } }, /body\.caps has an unknown field "cheap"/],
      ];
      for (const [body, message] of bad) {
        const r = await t.app.inject({ method: 'POST', url: '/api/v1/admin/tokens', headers: t.auth, payload: body });
        assert.equal(r.statusCode, 400, JSON.stringify(body));
        assert.match(r.json().error.message, message);
      }
      assert.equal((await t.app.inject({ method: 'GET', url: '/api/v1/admin/tokens', headers: t.auth })).json().items.length, 0, 'nothing was made');
      await keysAndToken(t, KEYS);
      const s = await token(t, { name: 'narrow', endpoints: ['search'] });
      assert.equal((await post(t, s.token, '/extract', { urls: ['https://example.com'] })).statusCode, 403);
      const p = await t.app.inject({ method: 'PATCH', url: `/api/v1/admin/tokens/${s.id}`, headers: t.auth, payload: { endpoints: null } });
      assert.equal(p.statusCode, 200, p.body);
      assert.equal(p.json().endpoints, null);
      assert.equal((await post(t, s.token, '/extract', { urls: ['https://example.com'] })).statusCode, 200);
    }));
});

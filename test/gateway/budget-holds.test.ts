import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { type TestApp, fakeUpstream, keysAndToken } from '../support/app.js';
import { describeEachDialect } from '../support/db.js';
import { connect, text } from '../support/mcp.js';
import { until } from '../support/receiver.js';

const KEYS = ['tvly-dev-holdkey000001', 'tvly-dev-holdkey000002', 'tvly-dev-holdkey000003'];

async function token(t: TestApp, body: object): Promise<{ id: number; token: string }> {
  const r = await t.app.inject({ method: 'POST', url: '/api/v1/admin/tokens', headers: t.auth, payload: body });
  assert.equal(r.statusCode, 201, r.body);
  return { id: r.json().item.id, token: r.json().token };
}

async function spent(t: TestApp, id: number): Promise<number> {
  await t.ctx.parts.outbox.flush();
  const r = await t.app.inject({ method: 'GET', url: '/api/v1/admin/tokens?include_revoked=true', headers: t.auth });
  return (r.json().items as Array<{ id: number; month_spent: number }>).find((x) => x.id === id)!.month_spent;
}

const MCP_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

/** One POST /mcp carrying a JSON-RPC batch of tools/call messages, as a client may send it. */
async function mcpBatch(url: string, tok: string, calls: Array<{ name: string; arguments: object }>) {
  const batch = calls.map((c, i) => ({ jsonrpc: '2.0', id: i + 1, method: 'tools/call', params: c }));
  const r = await fetch(`${url}/mcp`, { method: 'POST', headers: { ...MCP_HEADERS, authorization: `Bearer ${tok}` }, body: JSON.stringify(batch) });
  assert.equal(r.status, 200, await r.clone().text());
  return (await r.json()) as Array<{ jsonrpc: string; id: number; result?: CallToolResult; error?: unknown }>;
}

describeEachDialect('budgets and caps that hold at every door', (dialect) => {
  const up = fakeUpstream(dialect);
  const post = (t: TestApp, tok: string, url: string, payload: object) =>
    t.app.inject({ method: 'POST', url, headers: { authorization: `Bearer ${tok}` }, payload });
  const upstream = (path: string) => up.fake.stats.requests.get(path) ?? 0;

  test('caps.max_credits refuses a crawl or map by the most it can cost (its page limit, Tavily’s 50 when none), through REST and MCP', () =>
    up.withApp({}, async (t) => {
      await keysAndToken(t, KEYS);
      up.fake.sitePages = 1000;
      const m = await token(t, { name: 'one credit', caps: { max_credits: 1 } });
      const refused = [
        ['/crawl', { url: 'https://docs.example.com', limit: 1000 }, /may cost up to 300 credits/],
        ['/crawl', { url: 'https://docs.example.com', limit: '1000' }, /may cost up to 300 credits/],
        ['/map', { url: 'https://docs.example.com', limit: 1000, instructions: 'API pages' }, /may cost up to 200 credits/],
        ['/crawl', { url: 'https://docs.example.com' }, /may cost up to 15 credits/],
        ['/crawl', { url: 'https://docs.example.com', limit: 5 }, /may cost up to 2 credits/],
        ['/extract', { urls: Array.from({ length: 6 }, (_, i) => `https://example.com/${i}`) }, /may cost up to 2 credits/],
      ] as const;
      for (const [url, payload, message] of refused) {
        const r = await post(t, m.token, url, payload);
        assert.equal(r.statusCode, 403, `${url} ${JSON.stringify(payload)}: ${r.body.slice(0, 200)}`);
        assert.match(r.json().detail.error, message);
        assert.match(r.json().detail.error, /may spend at most 1 on one request/);
      }
      assert.equal(upstream('/crawl') + upstream('/map') + upstream('/extract'), 0, 'Tavily saw none of them');
      // What fits is served: a map of 10 pages is 1 credit.
      assert.equal((await post(t, m.token, '/map', { url: 'https://docs.example.com', limit: 10 })).statusCode, 200);
      const listen = await t.app.listen({ port: 0, host: '127.0.0.1' });
      const client = await connect(listen, m.token);
      try {
        for (const args of [{ url: 'https://docs.example.com' }, { url: 'https://docs.example.com', limit: 1000 }]) {
          const r = (await client.callTool({ name: 'tavily_crawl', arguments: args })) as CallToolResult;
          assert.equal(r.isError, true, JSON.stringify(args));
          assert.match(text(r), /may cost up to \d+ credits/);
        }
      } finally {
        await client.close();
      }
      assert.equal(upstream('/crawl'), 0);
      assert.equal(await spent(t, m.id), 1);
    }));

  test('one MCP batch of 100 crawls against a budget of 10 spends at most 10; each call it cannot cover gets an error result', () =>
    up.withApp({}, async (t) => {
      await keysAndToken(t, KEYS);
      up.fake.sitePages = 1000;
      up.fake.latencyMs = 20;
      const b = await token(t, { name: 'ten credits', monthly_budget: 10 });
      const url = await t.app.listen({ port: 0, host: '127.0.0.1' });
      // limit 10: at most 1 (map) + 2 (extract) = 3 credits each; the fake bills exactly that.
      const answers = await mcpBatch(url, b.token, Array.from({ length: 100 }, (_, i) => ({ name: 'tavily_crawl', arguments: { url: `https://site${i}.example.com`, limit: 10 } })));
      assert.equal(answers.length, 100, 'one answer per call');
      assert.deepEqual(answers.map((a) => a.id).sort((x, y) => x - y), Array.from({ length: 100 }, (_, i) => i + 1));
      const served = answers.filter((a) => a.result && a.result.isError !== true);
      const refused = answers.filter((a) => a.result?.isError === true);
      assert.equal(served.length + refused.length, 100, 'every answer is a tool result');
      assert.equal(served.length, 3, 'three crawls of at most 3 credits fit a budget of 10');
      for (const r of refused) assert.match(text(r.result!), /may cost up to 3 credits; this token has [01] of its monthly budget of 10 credits left/);
      assert.equal(up.fake.totalCredits, 9);
      assert.equal(await spent(t, b.id), 9);

      // 60 searches in one batch against what is left of a fresh budget of 10: exactly 10 served.
      const s = await token(t, { name: 'ten searches', monthly_budget: 10 });
      up.fake.resetStats();
      const searches = await mcpBatch(url, s.token, Array.from({ length: 60 }, (_, i) => ({ name: 'tavily_search', arguments: { query: `q${i}` } })));
      assert.equal(searches.filter((a) => a.result && a.result.isError !== true).length, 10);
      assert.equal(up.fake.stats.requests.get('/search'), 10);
      assert.equal(await spent(t, s.id), 10);
    }));

  test('128 concurrent REST searches against a budget of 100: 100 served, 28 refused, 100 spent', () =>
    up.withApp({}, async (t) => {
      await keysAndToken(t, KEYS);
      up.fake.latencyMs = 50;
      const b = await token(t, { name: 'hundred', monthly_budget: 100 });
      const rs = await Promise.all(Array.from({ length: 128 }, (_, i) => post(t, b.token, '/search', { query: `burst ${i}` })));
      const codes = rs.map((r) => r.statusCode);
      assert.equal(codes.filter((c) => c === 200).length, 100);
      assert.equal(codes.filter((c) => c === 432).length, 28);
      assert.equal(up.fake.stats.requests.get('/search'), 100);
      assert.equal(await spent(t, b.id), 100);
      assert.equal(t.ctx.parts.budget.held(b.id), 0, 'every hold was settled');
    }));

  test('a failed or refused call releases what it held; a research task holds the most its model can cost until a poll bills it', () =>
    up.withApp({}, async (t) => {
      await keysAndToken(t, KEYS);
      const b = await token(t, { name: 'research', monthly_budget: 300 });
      // Tavily's own 400 (a query over 400 characters) costs nothing and holds nothing after.
      assert.equal((await post(t, b.token, '/search', { query: 'x'.repeat(401) })).statusCode, 400);
      assert.equal(t.ctx.parts.budget.held(b.id), 0);
      up.fake.researchPendingPolls = 1;
      const created = await post(t, b.token, '/research', { input: 'a topic', model: 'auto' });
      assert.equal(created.statusCode, 201, created.body);
      assert.equal(t.ctx.parts.budget.held(b.id), 250, 'auto may choose pro: up to 250 held');
      // 50 left: a second pro task does not fit, a search does.
      const second = await post(t, b.token, '/research', { input: 'another', model: 'pro' });
      assert.equal(second.statusCode, 432);
      assert.match(second.json().detail.error, /may cost up to 250 credits; this token has 50 of its monthly budget of 300 credits left \(0 spent in \d{4}-\d{2}, 250 held by requests in flight\)/);
      assert.equal((await post(t, b.token, '/search', { query: 'fits' })).statusCode, 200);
      const id = created.json().request_id as string;
      const poll = () => t.app.inject({ method: 'GET', url: `/research/${id}`, headers: { authorization: `Bearer ${b.token}` } });
      assert.equal((await poll()).statusCode, 202);
      assert.equal(t.ctx.parts.budget.held(b.id), 250, 'still running: still held');
      assert.equal((await poll()).statusCode, 200);
      assert.equal(t.ctx.parts.budget.held(b.id), 0, 'billed: the hold is settled');
      assert.equal(await spent(t, b.id), 1 + 4, 'the search and the task as Tavily billed it');
      // A budget of 100 cannot cover mini research (up to 110).
      const small = await token(t, { name: 'small', monthly_budget: 100 });
      const r = await post(t, small.token, '/research', { input: 'q', model: 'mini' });
      assert.equal(r.statusCode, 432);
      assert.match(r.json().detail.error, /may cost up to 110 credits/);
      assert.equal(upstream('/research'), 1);
    }));

  test('a value’s form does not get past a cap: numbers as text, any case or spacing, auto_parameters, auto and absent models', () =>
    up.withApp({}, async (t) => {
      await keysAndToken(t, KEYS);
      const c = await token(t, { name: 'capped', caps: { advanced: false, max_results: 10, research_pro: false } });
      const refused: Array<[string, object, RegExp]> = [
        ['/search', { query: 'q', max_results: '50' }, /at most 10 results \(max_results 50\)/],
        ['/crawl', { url: 'https://example.com', limit: '1000' }, /at most 10 results \(limit 1000\)/],
        ['/map', { url: 'https://example.com' }, /at most 10 results \(limit not set: Tavily's default is 50\)/],
        ['/search', { query: 'q', search_depth: 'Advanced' }, /may not make "advanced" requests \(search_depth "advanced"\)/],
        ['/search', { query: 'q', search_depth: ' advanced ' }, /may not make "advanced" requests/],
        ['/search', { query: 'q', search_depth: 'deep' }, /may not make "advanced" requests \(search_depth "deep"\)/],
        ['/search', { query: 'q', auto_parameters: true }, /auto_parameters without a search_depth may choose "advanced"/],
        ['/search', { query: 'q', auto_parameters: 'TRUE' }, /auto_parameters without a search_depth/],
        ['/extract', { urls: ['https://example.com'], extract_depth: 'ADVANCED' }, /extract_depth "advanced"/],
        ['/crawl', { url: 'https://example.com', limit: 5, extract_depth: 'Advanced' }, /extract_depth "advanced"/],
        ['/research', { input: 'q', model: 'Pro' }, /pro model \(model "pro"\)/],
        ['/research', { input: 'q', model: 'auto' }, /model "auto" \(which may choose pro\)/],
        ['/research', { input: 'q' }, /no model \(Tavily then chooses, and may choose pro\)/],
      ];
      for (const [url, payload, message] of refused) {
        const r = await post(t, c.token, url, payload);
        assert.equal(r.statusCode, 403, `${url} ${JSON.stringify(payload)}: ${r.body.slice(0, 200)}`);
        assert.match(r.json().detail.error, message, JSON.stringify(payload));
      }
      // Forms Tavily itself refuses are refused here, naming the field.
      const bad: Array<[string, object, RegExp]> = [
        ['/search', { query: 'q', max_results: [50] }, /max_results must be a whole number of at least 0 \(it was \[50\]\)/],
        ['/search', { query: 'q', max_results: 'fifty' }, /max_results must be a whole number/],
        ['/search', { query: 'q', max_results: 5.5 }, /max_results must be a whole number/],
        ['/crawl', { url: 'https://example.com', limit: 0 }, /limit must be a whole number of at least 1 \(it was 0\)/],
        ['/search', { query: 'q', search_depth: 2 }, /search_depth must be one of basic, advanced, fast, ultra-fast \(it was 2\)/],
        ['/search', { query: 'q', auto_parameters: 'maybe' }, /auto_parameters must be true or false/],
        ['/map', { url: 'https://example.com', limit: 5, instructions: { pages: 'all' } }, /instructions must be text/],
      ];
      for (const [url, payload, message] of bad) {
        const r = await post(t, c.token, url, payload);
        assert.equal(r.statusCode, 400, `${url} ${JSON.stringify(payload)}: ${r.body.slice(0, 200)}`);
        assert.match(r.json().detail.error, message);
      }
      assert.equal([...up.fake.stats.requests.values()].reduce((a, b) => a + b, 0), 0, 'Tavily saw none of them');
      // What passes is sent as it was checked.
      assert.equal((await post(t, c.token, '/search', { query: 'q', max_results: ' 7 ', search_depth: ' Basic ', auto_parameters: 'true' })).statusCode, 200);
      const sent = up.fake.stats.last!.body as Record<string, unknown>;
      assert.deepEqual([sent.max_results, sent.search_depth, sent.auto_parameters], [7, 'basic', true]);
      assert.equal((await post(t, c.token, '/research', { input: 'q', model: ' MINI' })).statusCode, 201);
      assert.equal((up.fake.stats.last!.body as Record<string, unknown>).model, 'mini');

      // MCP: the tools' defaults count (crawl's limit 50, research's model auto).
      const listen = await t.app.listen({ port: 0, host: '127.0.0.1' });
      const client = await connect(listen, c.token);
      try {
        const crawl = (await client.callTool({ name: 'tavily_crawl', arguments: { url: 'https://example.com' } })) as CallToolResult;
        assert.equal(crawl.isError, true);
        assert.match(text(crawl), /at most 10 results \(limit 50\)/);
        const research = (await client.callTool({ name: 'tavily_research', arguments: { input: 'q' } })) as CallToolResult;
        assert.equal(research.isError, true);
        assert.match(text(research), /model "auto" \(which may choose pro\)/);
      } finally {
        await client.close();
      }
    }));

  test('a token revoked during an MCP research task: its polls stop at once, the tool says why, nothing more is billed', () =>
    up.withApp({}, async (t) => {
      await keysAndToken(t, KEYS);
      const r = await token(t, { name: 'researcher', monthly_budget: 1000 });
      up.fake.researchPendingPolls = 1_000_000;
      const listen = await t.app.listen({ port: 0, host: '127.0.0.1' });
      const client = await connect(listen, r.token);
      try {
        const call = client.callTool({ name: 'tavily_research', arguments: { input: 'a long topic', model: 'mini' } }) as Promise<CallToolResult>;
        // Let it poll a few times (the tests poll every 20 ms, growing to 10 s).
        await until(() => [...up.fake.stats.researchPollsById.values()].reduce((a, b) => a + b, 0) >= 3, 'three polls of the task');
        assert.equal(t.ctx.parts.budget.held(r.id), 110, 'the task holds what mini research can cost');
        const revoke = await t.app.inject({ method: 'DELETE', url: `/api/v1/admin/tokens/${r.id}`, headers: t.auth });
        assert.ok(revoke.statusCode < 300, revoke.body);
        const polledAtRevoke = [...up.fake.stats.researchPollsById.values()].reduce((a, b) => a + b, 0);
        const result = await call;
        assert.equal(result.isError, true);
        assert.match(text(result), /this client token was revoked on \d{4}-\d{2}-\d{2}/);
        assert.ok([...up.fake.stats.researchPollsById.values()].reduce((a, b) => a + b, 0) <= polledAtRevoke + 1, 'at most the poll in flight went out after the revocation');
        assert.equal(t.ctx.parts.budget.held(r.id), 0, 'the task no longer holds the budget');
      } finally {
        await client.close();
      }
      assert.equal(await spent(t, r.id), 0, 'nothing billed');
    }));

  test('an expiring token: its research polls stop at expiry, saying so; a REST poll answers 401', () =>
    up.withApp({}, async (t) => {
      await keysAndToken(t, KEYS);
      const e = await token(t, { name: 'short-lived', expires_at: new Date(Date.now() + 1500).toISOString() });
      up.fake.researchPendingPolls = 1_000_000;
      const created = await post(t, e.token, '/research', { input: 'q', model: 'mini' });
      assert.equal(created.statusCode, 201);
      const listen = await t.app.listen({ port: 0, host: '127.0.0.1' });
      const client = await connect(listen, e.token);
      try {
        const result = (await client.callTool({ name: 'tavily_research', arguments: { input: 'another', model: 'mini' } })) as CallToolResult;
        assert.equal(result.isError, true);
        assert.match(text(result), /this client token expired at \d{4}-/);
      } finally {
        await client.close();
      }
      const poll = await t.app.inject({ method: 'GET', url: `/research/${created.json().request_id}`, headers: { authorization: `Bearer ${e.token}` } });
      assert.equal(poll.statusCode, 401);
      assert.equal(await spent(t, e.id), 0);
    }));
});

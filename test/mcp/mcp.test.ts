import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { type TestApp, fakeUpstream, keysAndToken } from '../support/app.js';
import { describeEachDialect } from '../support/db.js';
import { connect, text } from '../support/mcp.js';


async function logRows(t: TestApp) {
  await t.ctx.parts.outbox.flush();
  return t.ctx.parts.database.db.selectFrom('request_logs').select(['endpoint', 'status', 'credits', 'via', 'attempts']).orderBy('id').execute();
}

/** What an agent that used Tavily's own MCP server relies on: names, argument types, enums and defaults. */
const TAVILY_MCP_INTERFACE: Record<string, Record<string, { type: string; enum?: string[]; default?: unknown }>> = {
  tavily_search: {
    query: { type: 'string' },
    search_depth: { type: 'string', enum: ['basic', 'advanced', 'fast', 'ultra-fast'], default: 'basic' },
    topic: { type: 'string', enum: ['general'], default: 'general' },
    time_range: { type: 'string', enum: ['day', 'week', 'month', 'year'] },
    start_date: { type: 'string', default: '' },
    end_date: { type: 'string', default: '' },
    max_results: { type: 'number', default: 5 },
    include_images: { type: 'boolean', default: false },
    include_image_descriptions: { type: 'boolean', default: false },
    include_raw_content: { type: 'boolean', default: false },
    include_domains: { type: 'array', default: [] },
    exclude_domains: { type: 'array', default: [] },
    country: { type: 'string', default: '' },
    include_favicon: { type: 'boolean', default: false },
    exact_match: { type: 'boolean' },
  },
  tavily_extract: {
    urls: { type: 'array' },
    extract_depth: { type: 'string', enum: ['basic', 'advanced'], default: 'basic' },
    include_images: { type: 'boolean', default: false },
    format: { type: 'string', enum: ['markdown', 'text'], default: 'markdown' },
    include_favicon: { type: 'boolean', default: false },
    query: { type: 'string' },
  },
  tavily_crawl: {
    url: { type: 'string' },
    max_depth: { type: 'integer', default: 1 },
    max_breadth: { type: 'integer', default: 20 },
    limit: { type: 'integer', default: 50 },
    instructions: { type: 'string' },
    select_paths: { type: 'array', default: [] },
    select_domains: { type: 'array', default: [] },
    allow_external: { type: 'boolean', default: true },
    extract_depth: { type: 'string', enum: ['basic', 'advanced'], default: 'basic' },
    format: { type: 'string', enum: ['markdown', 'text'], default: 'markdown' },
    include_favicon: { type: 'boolean', default: false },
  },
  tavily_map: {
    url: { type: 'string' },
    max_depth: { type: 'integer', default: 1 },
    max_breadth: { type: 'integer', default: 20 },
    limit: { type: 'integer', default: 50 },
    instructions: { type: 'string' },
    select_paths: { type: 'array', default: [] },
    select_domains: { type: 'array', default: [] },
    allow_external: { type: 'boolean', default: true },
  },
  tavily_research: {
    input: { type: 'string' },
    model: { type: 'string', enum: ['mini', 'pro', 'auto'], default: 'auto' },
  },
};
const REQUIRED: Record<string, string[]> = { tavily_search: ['query'], tavily_extract: ['urls'], tavily_crawl: ['url'], tavily_map: ['url'], tavily_research: ['input'] };

describeEachDialect('the MCP endpoint', (dialect) => {
  const up = fakeUpstream(dialect);

  async function start(t: TestApp, keys = ['tvly-dev-mcpkey0000001', 'tvly-dev-mcpkey0000002'], tokenBody: object = { name: 'mcp agent' }) {
    const c = await keysAndToken(t, keys, tokenBody);
    const url = await t.app.listen({ port: 0, host: '127.0.0.1' });
    return { ...c, url };
  }

  test('lists the tools of Tavily’s MCP server, with its arguments, types, enums and defaults', () =>
    up.withApp({}, async (t) => {
      const { url, token } = await start(t);
      const client = await connect(url, token);
      try {
        assert.equal(client.getServerVersion()?.name, 'tavily-pool');
        const { tools } = await client.listTools();
        assert.deepEqual(tools.map((x) => x.name), Object.keys(TAVILY_MCP_INTERFACE));
        for (const tool of tools) {
          const want = TAVILY_MCP_INTERFACE[tool.name]!;
          const props = tool.inputSchema.properties as Record<string, { type: string; enum?: string[]; default?: unknown; description?: string }>;
          assert.deepEqual(Object.keys(props).sort(), Object.keys(want).sort(), `${tool.name}: the same arguments`);
          for (const [arg, spec] of Object.entries(want)) {
            assert.equal(props[arg]!.type, spec.type, `${tool.name}.${arg} type`);
            assert.deepEqual(props[arg]!.enum, spec.enum, `${tool.name}.${arg} enum`);
            assert.deepEqual(props[arg]!.default, spec.default, `${tool.name}.${arg} default`);
            assert.ok(props[arg]!.description, `${tool.name}.${arg} is described`);
          }
          assert.deepEqual(tool.inputSchema.required, REQUIRED[tool.name]);
          assert.ok(tool.description && tool.description.length > 40);
        }
      } finally {
        await client.close();
      }
    }));

  test('calls each tool through the gateway: readable text, the raw JSON, credits exact, logged as MCP', () =>
    up.withApp({}, async (t) => {
      const { url, token } = await start(t);
      const client = await connect(url, token);
      try {
        const search = (await client.callTool({ name: 'tavily_search', arguments: { query: 'key pools', search_depth: 'advanced', include_domains: [], country: '' } })) as CallToolResult;
        assert.equal(search.isError, undefined, text(search));
        assert.match(text(search), /^Detailed Results:\n\nTitle: Result 1 for key pools\nURL: https:\/\/example\.com\/1\nContent: About key pools/);
        assert.equal((search.structuredContent as { query: string }).query, 'key pools');
        assert.equal((up.fake.stats.last!.body as Record<string, unknown>).search_depth, 'advanced');
        assert.equal('include_domains' in (up.fake.stats.last!.body as object), false, 'empty arguments are not sent');
        assert.equal(up.fake.stats.last!.headers['x-client-source'], 'MCP');

        const extract = (await client.callTool({ name: 'tavily_extract', arguments: { urls: ['https://a.example', 'https://b.example'] } })) as CallToolResult;
        assert.match(text(extract), /URL: https:\/\/a\.example\nContent: Content of https:\/\/a\.example/);
        const crawl = (await client.callTool({ name: 'tavily_crawl', arguments: { url: 'https://docs.example', instructions: 'the API' } })) as CallToolResult;
        assert.match(text(crawl), /^Crawl Results:\nBase URL: https:\/\/docs\.example\n\nCrawled Pages:\n\n\[1\] URL: https:\/\/docs\.example\/page1\nContent: Content of/);
        const map = (await client.callTool({ name: 'tavily_map', arguments: { url: 'https://docs.example' } })) as CallToolResult;
        assert.match(text(map), /^Site Map Results:\nBase URL: https:\/\/docs\.example\n\nMapped Pages:\n\n\[1\] URL: https:\/\/docs\.example\/page1/);
        const research = (await client.callTool({ name: 'tavily_research', arguments: { input: 'the history of search', model: 'mini' } })) as CallToolResult;
        assert.equal(text(research), 'A research report.');

        const rows = await logRows(t);
        assert.deepEqual(rows.map((r) => r.endpoint), ['search', 'extract', 'crawl', 'map', 'research', 'research.get']);
        assert.ok(rows.every((r) => r.via === 'mcp'), 'each row says it came through MCP');
        // What the fake charged = the log = the token's spend.
        const logged = rows.reduce((s, r) => s + r.credits, 0);
        assert.equal(logged, up.fake.totalCredits);
        assert.equal(logged, 2 + 1 + 3 + 1 + 4, 'advanced search 2, extract 1, crawl 3, map 1, research (mini) 4');
        const tok = (await t.app.inject({ method: 'GET', url: '/api/v1/admin/tokens', headers: t.auth })).json().items[0];
        assert.equal(tok.month_spent, logged);
      } finally {
        await client.close();
      }
    }));

  test('research reports progress while the task runs, and its polls do not spend the RPM allowance', () =>
    up.withApp({}, async (t) => {
      const { url, token } = await start(t, ['tvly-dev-mcpresearch0001'], { name: 'slow', rpm_limit: 2 });
      up.fake.researchPendingPolls = 3;
      const client = await connect(url, token);
      try {
        const progress: { progress: number; message?: string }[] = [];
        const r = (await client.callTool({ name: 'tavily_research', arguments: { input: 'a broad question' } }, undefined, { onprogress: (p) => progress.push(p) })) as CallToolResult;
        assert.equal(r.isError, undefined, text(r));
        assert.equal(text(r), 'A research report.');
        assert.deepEqual(progress.map((p) => p.progress), [1, 2, 3]);
        assert.match(progress[0]!.message!, /^research in_progress for \d+ s \(task /);
        const polls = (await logRows(t)).filter((x) => x.endpoint === 'research.get');
        assert.equal(polls.length, 4, 'three polls found it running, the fourth done');
        assert.equal(up.fake.totalCredits, 4);
      } finally {
        up.fake.researchPendingPolls = 0;
        await client.close();
      }
    }));

  test('failures inside a tool are tool results with isError, never a broken session', () =>
    up.withApp({}, async (t) => {
      const { url, token } = await start(t, ['tvly-dev-mcperrors00001'], { name: 'capped', monthly_budget: 1 });
      const client = await connect(url, token);
      try {
        const bad = (await client.callTool({ name: 'tavily_search', arguments: { query: 42 } })) as CallToolResult;
        assert.equal(bad.isError, true);
        assert.match(text(bad), /Invalid arguments for tavily_search: query must be string/);
        const missing = (await client.callTool({ name: 'tavily_extract', arguments: {} })) as CallToolResult;
        assert.equal(missing.isError, true);
        assert.match(text(missing), /Invalid arguments for tavily_extract: urls is required/);
        const long = (await client.callTool({ name: 'tavily_search', arguments: { query: 'x'.repeat(401) } })) as CallToolResult;
        assert.equal(long.isError, true);
        assert.match(text(long), /Tavily API error \(400\): Query is too long/);
        assert.equal((await client.callTool({ name: 'tavily_search', arguments: { query: 'spends the budget' } })).isError, undefined);
        const over = (await client.callTool({ name: 'tavily_search', arguments: { query: 'over budget' } })) as CallToolResult;
        assert.equal(over.isError, true);
        assert.match(text(over), /monthly budget of 1 credit is used up/);
        await assert.rejects(client.callTool({ name: 'tavily_nothing', arguments: {} }), /Unknown tool: tavily_nothing/);
        // The session goes on.
        assert.equal((await client.listTools()).tools.length, 5);
      } finally {
        await client.close();
      }
    }));

  test("arguments Tavily's API takes are passed on, whatever bounds the tool's schema advises; Tavily judges the rest", () =>
    up.withApp({}, async (t) => {
      const { url, token } = await start(t, ['tvly-dev-mcpbounds00001']);
      const client = await connect(url, token);
      try {
        const schema = (await client.listTools()).tools.find((x) => x.name === 'tavily_search')!.inputSchema as unknown as { properties: { max_results: { minimum: number } } };
        assert.equal(schema.properties.max_results.minimum, 5, "the schema still advises tavily-mcp's bounds");
        const three = (await client.callTool({ name: 'tavily_search', arguments: { query: 'three please', max_results: 3, topic: 'news', include_raw_content: 'markdown' } })) as CallToolResult;
        assert.equal(three.isError, undefined, text(three));
        assert.equal((three.structuredContent as { results: unknown[] }).results.length, 3);
        const sent = up.fake.stats.last!.body as Record<string, unknown>;
        assert.deepEqual(
          { max_results: sent.max_results, topic: sent.topic, raw: sent.include_raw_content },
          { max_results: 3, topic: 'news', raw: 'markdown' },
          'forwarded as given',
        );
        const one = (await client.callTool({ name: 'tavily_search', arguments: { query: 'one', max_results: 1 } })) as CallToolResult;
        assert.equal((one.structuredContent as { results: unknown[] }).results.length, 1);
        const tooMany = (await client.callTool({ name: 'tavily_search', arguments: { query: 'too many', max_results: 25 } })) as CallToolResult;
        assert.equal(tooMany.isError, true);
        assert.match(text(tooMany), /Tavily API error \(400\): max_results must be between 0 and 20/);
      } finally {
        await client.close();
      }
    }));

  test('a body that is not JSON is a JSON-RPC parse error (-32700); tools/call without a name is invalid params (-32602), in words', () =>
    up.withApp({}, async (t) => {
      const { url, token } = await start(t);
      const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${token}` };
      const post = async (body: string, h: Record<string, string> = headers, path = '/mcp') => {
        const r = await fetch(`${url}${path}`, { method: 'POST', headers: h, body });
        return { status: r.status, body: (await r.json()) as { jsonrpc: string; id: unknown; error: { code: number; message: string } } };
      };
      for (const path of ['/mcp', '/mcp/']) {
        const broken = await post('{"jsonrpc": "2.0", "id": 1, "method": ', headers, path);
        assert.equal(broken.status, 400);
        assert.equal(broken.body.jsonrpc, '2.0');
        assert.equal(broken.body.error.code, -32700, path);
        assert.match(broken.body.error.message, /^Parse error: the body is not JSON/);
        assert.equal(broken.body.id, null);
      }
      // Another media type: JSON-RPC's envelope too, the same answer whether Fastify has a parser for it or not.
      for (const type of ['text/plain', 'application/xml']) {
        const other = await post('<hello/>', { ...headers, 'content-type': type });
        assert.equal(other.status, 415, type);
        assert.deepEqual(other.body, { jsonrpc: '2.0', error: { code: -32000, message: 'Unsupported Media Type: Content-Type must be application/json' }, id: null });
      }
      const nameless = await post(JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { arguments: { query: 'x' } } }));
      assert.equal(nameless.body.id, 7);
      assert.equal(nameless.body.error.code, -32602);
      assert.equal(nameless.body.error.message, 'Invalid params: tools/call needs params.name, the name of a tool from tools/list');
    }));

  test('no or a wrong token: 401 with WWW-Authenticate; ?tavilyApiKey= works for clients without headers', () =>
    up.withApp({}, async (t) => {
      const { url, token } = await start(t);
      const init = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } } };
      const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
      const attempts: Record<string, string>[] = [{}, { authorization: 'Bearer tp_wrong' }, { authorization: `Bearer ${t.auth.authorization.slice(7)}` }];
      for (const auth of attempts) {
        const r = await fetch(`${url}/mcp`, { method: 'POST', headers: { ...headers, ...auth }, body: JSON.stringify(init) });
        assert.equal(r.status, 401);
        assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer realm="tavily-pool", error="invalid_token"/);
        assert.match(((await r.json()) as { error: { message: string } }).error.message, /^tavily-pool: /);
      }
      const viaQuery = await connect(url, null, `?tavilyApiKey=${encodeURIComponent(token)}`);
      assert.equal((await viaQuery.listTools()).tools.length, 5);
      await viaQuery.close();
      const get = await fetch(`${url}/mcp`, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' } });
      assert.equal(get.status, 405);
      assert.equal(get.headers.get('allow'), 'POST');
    }));
});

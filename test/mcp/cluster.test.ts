import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { type TestCluster, keysAndToken, startCluster } from '../support/app.js';
import { dialects } from '../support/db.js';
import { FakeTavily } from '../support/fake-tavily.js';
import { until } from '../support/receiver.js';

const postgres = dialects.find((d) => d.name === 'postgres')!;

if (postgres.skip) test('MCP over two instances on one PostgreSQL', { skip: postgres.skip }, () => {});
else
  describe('MCP over two instances on one PostgreSQL', () => {
    let fake: FakeTavily;
    let cluster: TestCluster;
    before(async () => {
      fake = await FakeTavily.start();
      cluster = await startCluster(postgres, 2, { tavilyBaseUrl: fake.url });
    });
    after(async () => {
      await cluster.close();
      await fake.close();
    });

    test('a client initializes through one instance and calls tools through the other; research made on A and polled on B is billed once', async () => {
      const [a, b] = cluster.instances as [(typeof cluster.instances)[0], (typeof cluster.instances)[0]];
      const c = await keysAndToken(a, ['tvly-dev-mcpcluster0001', 'tvly-dev-mcpcluster0002']);
      await until(() => b.ctx.parts.tokens.byId(1) !== undefined, 'B to know the token');
      const urls = [await a.app.listen({ port: 0, host: '127.0.0.1' }), await b.app.listen({ port: 0, host: '127.0.0.1' })];
      // A round-robin balancer: each HTTP request goes to the next instance.
      let next = 0;
      const seen: string[] = [];
      const balanced = (input: string | URL | Request, init?: RequestInit) => {
        const target = urls[next++ % 2]!;
        seen.push(target);
        const u = new URL(String(input));
        return fetch(`${target}${u.pathname}${u.search}`, init);
      };
      const client = new Client({ name: 'balanced', version: '1.0.0' });
      await client.connect(new StreamableHTTPClientTransport(new URL(`${urls[0]}/mcp`), { fetch: balanced, requestInit: { headers: { authorization: `Bearer ${c.token}` } } }));
      try {
        const r = (await client.callTool({ name: 'tavily_search', arguments: { query: 'over two instances' } })) as CallToolResult;
        assert.equal(r.isError, undefined);
        assert.equal(new Set(seen).size, 2, 'messages went to both instances');

        // REST: the task created through A, polled through B and A; then the MCP tool on B.
        const created = await a.app.inject({ method: 'POST', url: '/research', headers: { authorization: `Bearer ${c.token}` }, payload: { input: 'made on A' } });
        const id = created.json().request_id as string;
        let onB = await b.app.inject({ method: 'GET', url: `/research/${id}`, headers: { authorization: `Bearer ${c.token}` } });
        for (let i = 0; i < 100 && onB.statusCode === 404; i++) {
          await new Promise((res) => setTimeout(res, 20));
          onB = await b.app.inject({ method: 'GET', url: `/research/${id}`, headers: { authorization: `Bearer ${c.token}` } });
        }
        assert.equal(onB.statusCode, 200, onB.body);
        await b.ctx.parts.outbox.flush();
        await until(async () => (await a.ctx.parts.research.lookup(id))?.charged === true, 'A to see the task charged');
        assert.equal((await a.app.inject({ method: 'GET', url: `/research/${id}`, headers: { authorization: `Bearer ${c.token}` } })).statusCode, 200);

        const viaTool = (await client.callTool({ name: 'tavily_research', arguments: { input: 'through MCP', model: 'mini' } })) as CallToolResult;
        assert.equal(viaTool.isError, undefined);
        await Promise.all([a, b].map((t) => t.ctx.parts.outbox.flush()));
        const rows = await a.ctx.parts.database.db.selectFrom('request_logs').select(['endpoint', 'credits', 'via']).execute();
        const researchCredits = rows.filter((x) => x.endpoint === 'research.get').reduce((s, x) => s + x.credits, 0);
        assert.equal(researchCredits, 8, 'each task billed once (4 credits each)');
        assert.equal(rows.reduce((s, x) => s + x.credits, 0), fake.totalCredits, 'the log holds what Tavily billed');
        assert.ok(rows.filter((x) => x.via === 'mcp').length >= 3);
      } finally {
        await client.close();
      }
    });
  });

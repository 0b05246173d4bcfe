import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import { fakeUpstream, keysAndToken } from '../support/app.js';
import { dialects } from '../support/db.js';

const run = promisify(execFile);

/**
 * Real MCP clients against the endpoint, each in a process of its own: the MCP Inspector's
 * CLI (as a developer tries a server), and the scenarios of the MCP conformance suite that
 * apply to a stateless tools server.
 */
describe('real MCP clients', () => {
  const up = fakeUpstream(dialects[0]!);

  test('the MCP Inspector CLI lists the tools and calls each through the gateway', () =>
    up.withApp({}, async (t) => {
      const c = await keysAndToken(t, ['tvly-dev-inspector00001']);
      const url = await t.app.listen({ port: 0, host: '127.0.0.1' });
      // The CLI looks for its own package.json relative to the working directory.
      const cwd = path.resolve('node_modules/@modelcontextprotocol/inspector-cli/build');
      const inspector = (...args: string[]) =>
        run(process.execPath, ['index.js', `${url}/mcp`, '--transport', 'http', '--header', `Authorization: Bearer ${c.token}`, ...args], { encoding: 'utf8', timeout: 60_000, cwd });
      const listed = JSON.parse((await inspector('--method', 'tools/list')).stdout) as { tools: { name: string }[] };
      assert.deepEqual(listed.tools.map((x) => x.name), ['tavily_search', 'tavily_extract', 'tavily_crawl', 'tavily_map', 'tavily_research']);
      const calls: [string, string[], RegExp][] = [
        ['tavily_search', ['query=inspector check'], /Detailed Results:[\s\S]*Result 1 for inspector check/],
        ['tavily_extract', ['urls=["https://a.example"]'], /Content of https:\/\/a\.example/],
        ['tavily_crawl', ['url=https://docs.example'], /Crawl Results:/],
        ['tavily_map', ['url=https://docs.example'], /Site Map Results:/],
        ['tavily_research', ['input=a question'], /A research report\./],
      ];
      for (const [tool, args, expect] of calls) {
        const out = JSON.parse((await inspector('--method', 'tools/call', '--tool-name', tool, ...args.flatMap((a) => ['--tool-arg', a]))).stdout) as { content: { text: string }[]; isError?: boolean };
        assert.notEqual(out.isError, true, `${tool}: ${out.content[0]?.text}`);
        assert.match(out.content[0]!.text, expect, tool);
      }
      await t.ctx.parts.outbox.flush();
      const rows = await t.ctx.parts.database.db.selectFrom('request_logs').select(['endpoint', 'via']).execute();
      assert.deepEqual(rows.map((r) => r.endpoint).sort(), ['crawl', 'extract', 'map', 'research', 'research.get', 'search']);
      assert.ok(rows.every((r) => r.via === 'mcp'));
    }));

  // The suite's other server scenarios test fixtures of its reference server (tools named
  // test_*, resources, prompts, completions, logging, sampling, elicitation) or sessions and
  // resumable streams, which a stateless tools server does not have.
  const APPLICABLE = ['server-initialize', 'ping', 'tools-list', 'dns-rebinding-protection'];
  test(`the MCP conformance suite: ${APPLICABLE.join(', ')}`, () =>
    up.withApp({}, async (t) => {
      const c = await keysAndToken(t, ['tvly-dev-conformance0001']);
      const url = await t.app.listen({ port: 0, host: '127.0.0.1' });
      for (const scenario of APPLICABLE) {
        const r = await run(process.execPath, ['node_modules/@modelcontextprotocol/conformance/dist/index.js', 'server', '--url', `${url}/mcp?tavilyApiKey=${encodeURIComponent(c.token)}`, '--scenario', scenario], { encoding: 'utf8', timeout: 60_000 }).catch(
          (err: { stdout?: string; code?: number }) => ({ stdout: err.stdout ?? '', failed: err.code ?? 1 }),
        );
        assert.ok(!('failed' in r), `${scenario} failed:\n${r.stdout.slice(-2000)}`);
        assert.match(r.stdout, /Passed: (\d+)\/\1, 0 failed/, scenario);
      }
    }));
});

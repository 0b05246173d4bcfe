import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { OAuthClientProvider } from '@modelcontextprotocol/sdk/client/auth.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { type TestApp, keysAndToken, startTestApp } from '../support/app.js';
import { dialects } from '../support/db.js';
import { projectRoot } from '../support/entry.js';
import { FakeTavily } from '../support/fake-tavily.js';
import { text } from '../support/mcp.js';

const run = promisify(execFile);

/**
 * Every client the README names, configured as the README configures it: the snippets and
 * configuration files are read from README.md, the address and token put in, and run by the
 * real client where one can run here (the SDKs, mcp-remote, the Inspector's command lines);
 * the editors' configuration files drive the MCP SDK's client with the URL and headers they
 * hold, as the editors do.
 */
const README = fs.readFileSync(path.join(projectRoot, 'README.md'), 'utf8');

/** The first fenced block after the first line that contains `marker`. */
function block(marker: string): string {
  const at = README.indexOf(marker);
  assert.ok(at >= 0, `README names ${marker}`);
  const m = /```[a-z]*\n([\s\S]*?)\n\s*```/.exec(README.slice(at));
  assert.ok(m, `a code block follows ${marker}`);
  return m[1]!.replace(/^ {2}/gm, '');
}

const PLACEHOLDER_URL = 'http://127.0.0.1:8080';
const POOL = ['tvly-dev-readmeclient001', 'tvly-dev-readmeclient002'];

describe('the clients as the README configures them', () => {
  let fake: FakeTavily;
  let t: TestApp;
  let url: string;
  let token: string;
  let dir: string;
  const put = (s: string, tok = token) => s.replaceAll(PLACEHOLDER_URL, url).replaceAll('tp_…', tok);

  before(async () => {
    fake = await FakeTavily.start();
    t = await startTestApp(dialects[0]!, { tavilyBaseUrl: fake.url });
    token = (await keysAndToken(t, POOL)).token;
    url = await t.app.listen({ port: 0, host: '127.0.0.1' });
    // Inside the project, so that the snippets' imports resolve from its node_modules.
    fs.mkdirSync(path.join(projectRoot, '.build'), { recursive: true });
    dir = fs.mkdtempSync(path.join(projectRoot, '.build', 'readme-'));
  });
  after(async () => {
    fs.rmSync(dir, { recursive: true, force: true });
    await t.close();
    await fake.close();
  });

  /** Runs a README snippet as the ES module the README says it is, with a line that uses what it made. */
  async function snippet(marker: string, use: string): Promise<string> {
    const file = path.join(dir, `${marker.replace(/\W+/g, '-')}.mjs`);
    fs.writeFileSync(file, `${put(block(marker))}\n${use}\n`);
    const r = await run(process.execPath, [file], { encoding: 'utf8', timeout: 60_000 });
    return r.stdout;
  }

  const searches = () => fake.stats.requests.get('/search') ?? 0;

  test('the JavaScript SDKs: @tavily/core, @langchain/tavily, @tavily/ai-sdk', async () => {
    assert.match(README, /ES modules/, 'the README says the snippets are ES modules');
    let before = searches();
    const core = await snippet('**JavaScript, `@tavily/core`**', 'console.log(JSON.stringify({ n: result.results.length }));');
    assert.deepEqual(JSON.parse(core), { n: 3 });
    assert.equal(searches(), before + 1);
    assert.equal(fake.stats.requests.get('/feedback'), 1, 'the snippet’s feedback() went through too');

    before = searches();
    const lc = await snippet('**LangChain JS, `@langchain/tavily`**', "console.log(JSON.stringify(await search.invoke({ query: 'langchain through the pool' })));");
    assert.match(lc, /Result 1 for langchain through the pool/);
    assert.equal(searches(), before + 1);
    assert.equal((fake.stats.last!.body as { max_results?: number }).max_results, 5, 'its maxResults reached Tavily');

    before = searches();
    const ai = await snippet('**Vercel AI SDK, `@tavily/ai-sdk`**', "console.log(JSON.stringify(await tools.webSearch.execute({ query: 'ai sdk through the pool' }, { toolCallId: '1', messages: [] })));");
    assert.match(ai, /Result 1 for ai sdk through the pool/);
    assert.equal(searches(), before + 1);
    assert.ok(POOL.includes(/^Bearer (\S+)$/.exec(String(fake.stats.last!.headers.authorization))![1]!), 'Tavily saw a pool key');
  });

  /** An MCP client of the SDK with a URL and headers, as an editor connects from its configuration. */
  async function mcpClient(serverUrl: string, headers: Record<string, string> = {}): Promise<Client> {
    const client = new Client({ name: 'readme-config', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(serverUrl), { requestInit: { headers } }));
    return client;
  }
  async function searchWith(client: Client, query: string): Promise<string> {
    try {
      const r = (await client.callTool({ name: 'tavily_search', arguments: { query } })) as CallToolResult;
      assert.notEqual(r.isError, true, text(r));
      return text(r);
    } finally {
      await client.close();
    }
  }
  const headerOf = (line: string) => {
    const [name, ...value] = line.split(':');
    return { [name!.trim().toLowerCase()]: value.join(':').trim() };
  };

  test('Claude Code, Cursor and VS Code: the URL and header of their configuration', async () => {
    const cmd = put(block('**Claude Code:**'));
    const m = /--transport http \S+ (\S+) --header "([^"]+)"/.exec(cmd);
    assert.ok(m, cmd);
    assert.match(await searchWith(await mcpClient(m[1]!, headerOf(m[2]!)), 'claude code'), /Result 1 for claude code/);

    const cursor = JSON.parse(put(block('**Cursor**'))).mcpServers['tavily-pool'] as { url: string; headers: Record<string, string> };
    assert.match(await searchWith(await mcpClient(cursor.url, cursor.headers), 'cursor'), /Result 1 for cursor/);

    const vscodeText = block('**VS Code**');
    assert.doesNotMatch(vscodeText, /tp_/, '.vscode/mcp.json is often committed: the token is prompted for, never written in it');
    const vscode = JSON.parse(put(vscodeText)) as { inputs: { id: string; password: boolean }[]; servers: Record<string, { type: string; url: string; headers: Record<string, string> }> };
    const server = vscode.servers['tavily-pool']!;
    assert.equal(server.type, 'http');
    assert.equal(vscode.inputs[0]!.password, true);
    // VS Code puts the answer to the prompt where ${input:id} stands.
    const headers = Object.fromEntries(Object.entries(server.headers).map(([k, v]) => [k, v.replace(`\${input:${vscode.inputs[0]!.id}}`, token)]));
    assert.match(await searchWith(await mcpClient(server.url, headers), 'vs code'), /Result 1 for vs code/);
  });

  test('the token in the URL, with or without the slash of Tavily’s documentation', async () => {
    const inUrl = /`(http:\/\/127\.0\.0\.1:8080\/mcp\?tavilyApiKey=tp_…)`/.exec(README);
    assert.ok(inUrl, 'the README gives the URL form');
    assert.match(await searchWith(await mcpClient(put(inUrl[1]!)), 'in the url'), /Result 1 for in the url/);
    assert.match(await searchWith(await mcpClient(`${url}/mcp/?tavilyApiKey=${token}`), 'with a slash'), /Result 1 for with a slash/);
  });

  /** mcp-remote as Claude Desktop starts it (the README's claude_desktop_config.json), spoken to over stdio. */
  function mcpRemote(authValue: string, configDir: string): ChildProcess & { out: () => string; err: () => string } {
    const desktop = JSON.parse(put(block('**Claude Desktop**'))).mcpServers['tavily-pool'] as { command: string; args: string[]; env: Record<string, string> };
    assert.equal(desktop.command, 'npx');
    assert.deepEqual(desktop.args.slice(0, 2), ['-y', 'mcp-remote']);
    const env = { ...process.env, ...desktop.env, TAVILY_POOL_AUTH: authValue, MCP_REMOTE_CONFIG_DIR: configDir };
    // `npx -y mcp-remote` runs the package's bin: the installed one here.
    const p = spawn(process.execPath, [path.join(projectRoot, 'node_modules/mcp-remote/dist/proxy.js'), ...desktop.args.slice(2)], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout!.on('data', (d) => (out += d));
    p.stderr!.on('data', (d) => (err += d));
    return Object.assign(p, { out: () => out, err: () => err });
  }
  const send = (p: ChildProcess, msg: object) => p.stdin!.write(`${JSON.stringify(msg)}\n`);
  const INIT = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'claude-desktop-like', version: '1' } } };
  async function until(limitMs: number, what: string, check: () => boolean): Promise<void> {
    const t0 = Date.now();
    while (!check()) {
      if (Date.now() - t0 > limitMs) assert.fail(`${what}: not within ${limitMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  test('Claude Desktop through mcp-remote: served; a wrong token shows the gateway’s message, not an OAuth failure', async () => {
    const configDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcp-auth-'));
    try {
      const p = mcpRemote(`Bearer ${token}`, configDir);
      try {
        send(p, INIT);
        await until(20_000, 'mcp-remote initialized', () => p.out().includes('"id":1'));
        send(p, { jsonrpc: '2.0', method: 'notifications/initialized' });
        send(p, { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'tavily_search', arguments: { query: 'claude desktop', max_results: 3 } } });
        await until(20_000, 'the search answered', () => p.out().includes('"id":2'));
        assert.match(p.out(), /Result 1 for claude desktop/);
      } finally {
        p.kill();
      }

      const wrong = mcpRemote('Bearer tp_not-a-token-of-this-gateway', configDir);
      send(wrong, INIT);
      const code = await new Promise<number | null>((resolve) => {
        const timer = setTimeout(() => {
          wrong.kill();
          resolve(null);
        }, 30_000);
        wrong.on('exit', (c) => {
          clearTimeout(timer);
          resolve(c);
        });
      });
      assert.notEqual(code, null, `mcp-remote gave up instead of waiting for a browser sign-in:\n${wrong.err().slice(-1500)}`);
      assert.match(wrong.err(), /unknown client token/, 'the gateway’s reason reaches the user');
      assert.match(wrong.err(), /tavily-pool has no OAuth sign-in/);
      assert.doesNotMatch(wrong.err(), /HTTP 404/);
    } finally {
      fs.rmSync(configDir, { recursive: true, force: true });
    }
  });

  test('the SDK’s own OAuth handling, given a wrong token, fails with the gateway’s message', async () => {
    const saved: { client?: object } = {};
    const provider: OAuthClientProvider = {
      redirectUrl: 'http://localhost:1/callback',
      clientMetadata: { redirect_uris: ['http://localhost:1/callback'], client_name: 'test' },
      clientInformation: () => saved.client as never,
      saveClientInformation: (c) => {
        saved.client = c;
      },
      tokens: () => undefined,
      saveTokens: () => {},
      redirectToAuthorization: () => assert.fail('no browser sign-in: the gateway has no OAuth'),
      saveCodeVerifier: () => {},
      codeVerifier: () => '',
    };
    const client = new Client({ name: 'sdk-auth', version: '1.0.0' });
    const transport = new StreamableHTTPClientTransport(new URL(`${url}/mcp`), { authProvider: provider, requestInit: { headers: { authorization: 'Bearer tp_wrong-for-the-sdk' } } });
    await assert.rejects(client.connect(transport), (err: Error) => {
      assert.match(err.message, /unknown client token.*tavily-pool has no OAuth sign-in/s);
      return true;
    });
    // The discovery documents say the same, as JSON.
    const prm = await fetch(`${url}/.well-known/oauth-protected-resource/mcp`);
    assert.equal(prm.status, 404);
    assert.match(((await prm.json()) as { error_description: string }).error_description, /no OAuth sign-in/);
  });

  test('the MCP Inspector’s command lines: with a header, and the token in the URL for the version Node 20 gets', async () => {
    const withHeader = /npx @modelcontextprotocol\/inspector-cli@1 (\S+) --transport http --header "([^"]+)" --method tools\/list/.exec(put(README));
    assert.ok(withHeader, 'the README gives the command line with a header');
    const cli1 = path.join(projectRoot, 'node_modules/@modelcontextprotocol/inspector-cli/build');
    const listed1 = await run(process.execPath, ['index.js', withHeader[1]!, '--transport', 'http', '--header', withHeader[2]!, '--method', 'tools/list'], { encoding: 'utf8', timeout: 60_000, cwd: cli1 });
    assert.equal((JSON.parse(listed1.stdout) as { tools: unknown[] }).tools.length, 5);

    const old = /npx @modelcontextprotocol\/inspector@0\.15\.0 --cli "([^"]+)" --transport http --method tools\/list/.exec(put(README));
    assert.ok(old, 'the README gives the Node 20 form');
    assert.match(old[1]!, /\?tavilyApiKey=/);
    // `--cli` hands the rest to the Inspector's CLI package of the same version (0.15.0, installed here under an alias).
    const cli015 = path.join(projectRoot, 'node_modules/mcp-inspector-0.15/build');
    const listed015 = await run(process.execPath, ['index.js', old[1]!, '--transport', 'http', '--method', 'tools/list'], { encoding: 'utf8', timeout: 60_000, cwd: cli015 });
    assert.equal((JSON.parse(listed015.stdout) as { tools: unknown[] }).tools.length, 5);
    const called = await run(process.execPath, ['index.js', old[1]!, '--transport', 'http', '--method', 'tools/call', '--tool-name', 'tavily_search', '--tool-arg', 'query=old inspector'], { encoding: 'utf8', timeout: 60_000, cwd: cli015 });
    assert.match(called.stdout, /Result 1 for old inspector/);
  });
});

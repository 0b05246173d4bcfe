/** How to use a token, filled with this server's address: the README's client examples. */
export interface Snippet {
  id: string;
  title: string;
  lang: string;
  code: string;
}

/** The JavaScript examples use `import` and top-level `await`: they run as ES modules only. */
const ESM = '// An ES module: save it as search.mjs (or in a package with "type": "module").\n';

export function snippets(base: string, token: string): Snippet[] {
  const mcp = `${base}/mcp`;
  // mcp-remote refuses plain HTTP to hosts other than this machine unless told.
  const plainHttpElsewhere = /^http:\/\/(?!localhost[:/]|localhost$|127\.0\.0\.1|\[::1\])/.test(base);
  return [
    { id: 'curl', title: 'curl', lang: 'sh', code: `curl -s ${base}/search \\\n  -H 'Authorization: Bearer ${token}' \\\n  -H 'content-type: application/json' \\\n  -d '{"query": "what is a key pool?"}'` },
    { id: 'js', title: 'JavaScript (@tavily/core)', lang: 'js', code: `${ESM}import { tavily } from '@tavily/core';\nconst client = tavily({ apiKey: '${token}', apiBaseURL: '${base}' });\nconst result = await client.search('what is a key pool?');\nconsole.log(result.results);` },
    { id: 'python', title: 'Python (tavily-python)', lang: 'python', code: `from tavily import TavilyClient\nclient = TavilyClient(api_key="${token}", api_base_url="${base}")\nresult = client.search("what is a key pool?")` },
    { id: 'langchain', title: 'LangChain (@langchain/tavily)', lang: 'js', code: `${ESM}import { TavilySearch } from '@langchain/tavily';\nconst search = new TavilySearch({ tavilyApiKey: '${token}', apiBaseUrl: '${base}', maxResults: 5 });\nconsole.log(await search.invoke({ query: 'what is a key pool?' }));` },
    { id: 'claude', title: 'Claude Code (MCP)', lang: 'sh', code: `claude mcp add --transport http tavily-pool ${mcp} --header "Authorization: Bearer ${token}"` },
    {
      id: 'claude-desktop',
      title: 'Claude Desktop (MCP, claude_desktop_config.json)',
      lang: 'json',
      // Claude Desktop speaks stdio only: mcp-remote carries it to the HTTP endpoint.
      code: JSON.stringify(
        { mcpServers: { 'tavily-pool': { command: 'npx', args: ['-y', 'mcp-remote', mcp, '--header', 'Authorization:${TAVILY_POOL_AUTH}', ...(plainHttpElsewhere ? ['--allow-http'] : [])], env: { TAVILY_POOL_AUTH: `Bearer ${token}` } } } },
        null,
        2,
      ),
    },
    { id: 'cursor', title: 'Cursor (MCP, ~/.cursor/mcp.json)', lang: 'json', code: JSON.stringify({ mcpServers: { 'tavily-pool': { url: mcp, headers: { Authorization: `Bearer ${token}` } } } }, null, 2) },
    {
      id: 'vscode',
      title: 'VS Code (MCP, .vscode/mcp.json)',
      lang: 'json',
      // .vscode/mcp.json is often committed: VS Code asks for the token once and keeps it, so it is never in the file.
      code: JSON.stringify(
        {
          inputs: [{ type: 'promptString', id: 'tavily-pool-token', description: 'tavily-pool client token', password: true }],
          servers: { 'tavily-pool': { type: 'http', url: mcp, headers: { Authorization: 'Bearer ${input:tavily-pool-token}' } } },
        },
        null,
        2,
      ),
    },
  ];
}

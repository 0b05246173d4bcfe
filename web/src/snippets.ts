/** How to use a token, filled with this server's address: the README's client examples. */
export interface Snippet {
  id: string;
  title: string;
  lang: string;
  code: string;
}

export function snippets(base: string, token: string): Snippet[] {
  const mcp = `${base}/mcp`;
  return [
    { id: 'curl', title: 'curl', lang: 'sh', code: `curl -s ${base}/search \\\n  -H 'Authorization: Bearer ${token}' \\\n  -H 'content-type: application/json' \\\n  -d '{"query": "what is a key pool?"}'` },
    { id: 'js', title: 'JavaScript (@tavily/core)', lang: 'js', code: `import { tavily } from '@tavily/core';\nconst client = tavily({ apiKey: '${token}', apiBaseURL: '${base}' });\nconst result = await client.search('what is a key pool?');` },
    { id: 'python', title: 'Python (tavily-python)', lang: 'python', code: `from tavily import TavilyClient\nclient = TavilyClient(api_key="${token}", api_base_url="${base}")\nresult = client.search("what is a key pool?")` },
    { id: 'langchain', title: 'LangChain (@langchain/tavily)', lang: 'js', code: `import { TavilySearch } from '@langchain/tavily';\nconst search = new TavilySearch({ tavilyApiKey: '${token}', apiBaseUrl: '${base}', maxResults: 5 });` },
    { id: 'claude', title: 'Claude Code (MCP)', lang: 'sh', code: `claude mcp add --transport http tavily-pool ${mcp} --header "Authorization: Bearer ${token}"` },
    { id: 'cursor', title: 'Cursor (MCP, ~/.cursor/mcp.json)', lang: 'json', code: JSON.stringify({ mcpServers: { 'tavily-pool': { url: mcp, headers: { Authorization: `Bearer ${token}` } } } }, null, 2) },
    {
      id: 'vscode',
      title: 'VS Code (MCP, .vscode/mcp.json)',
      lang: 'json',
      code: JSON.stringify({ servers: { 'tavily-pool': { type: 'http', url: mcp, headers: { Authorization: `Bearer ${token}` } } } }, null, 2),
    },
  ];
}

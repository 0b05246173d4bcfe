import { Networks } from '../net.js';
import { ENDPOINTS, type EndpointName, mayBeAdvancedExtract, mayBeAdvancedSearch, researchModel } from './endpoints.js';
import { count } from '../text.js';
import type { RequestCaps, ScopeEndpoint } from '../schemas/tokens.js';

/** What a token may do, as stored (null: no limit of that kind). */
export interface TokenScopes {
  endpoints: ScopeEndpoint[] | null;
  networks: string[] | null;
  expiresAt: string | null;
  caps: RequestCaps | null;
}

/** Scopes made ready for the request path: the networks compiled once. */
export interface CompiledScopes extends TokenScopes {
  allowed: ReadonlySet<ScopeEndpoint> | null;
  nets: Networks | null;
  expiresAtMs: number | null;
}

export function compileScopes(s: TokenScopes): CompiledScopes | null {
  if (!s.endpoints && !s.networks && !s.expiresAt && !s.caps) return null;
  return {
    ...s,
    allowed: s.endpoints ? new Set(s.endpoints) : null,
    nets: s.networks ? new Networks(s.networks) : null,
    expiresAtMs: s.expiresAt ? Date.parse(s.expiresAt) : null,
  };
}

const scopeOf = (e: EndpointName): ScopeEndpoint => (e === 'research.get' ? 'research' : e);

/** Whether the token's scopes let it use this endpoint (the MCP tool list shows only those). */
export function endpointAllowed(s: CompiledScopes | null, endpoint: EndpointName): boolean {
  return !s?.allowed || s.allowed.has(scopeOf(endpoint));
}

/**
 * Why the token may not make this request (403), or null. Checked before admission, so that a
 * refused request spends neither a key nor the token's budget or RPM allowance. `body` is the
 * request in canonical form (fields.ts) and `most` the most it can cost: each cap holds
 * whatever form the client gave a value in, and whatever Tavily may choose for it.
 */
export function scopeRefusal(s: CompiledScopes | null, endpoint: EndpointName, body: Record<string, unknown>, remote: string | null | undefined, most: number): string | null {
  if (!s) return null;
  if (!endpointAllowed(s, endpoint)) {
    return `tavily-pool: this client token may not use ${scopeOf(endpoint)} (it may use: ${[...s.allowed!].join(', ')}).`;
  }
  if (s.nets && !s.nets.has(remote)) {
    return `tavily-pool: this client token may not be used from ${remote ?? 'an unknown address'} (its networks: ${s.networks!.join(', ')}).`;
  }
  const c = s.caps;
  if (!c || endpoint === 'research.get' || endpoint === 'feedback') return null;
  if (c.advanced === false) {
    if (endpoint === 'search' && mayBeAdvancedSearch(body)) {
      const why = body.search_depth === undefined || body.search_depth === null ? 'auto_parameters without a search_depth may choose "advanced"' : `search_depth "${String(body.search_depth)}"`;
      return `tavily-pool: this client token may not make "advanced" requests (${why}); use search_depth "basic".`;
    }
    if ((endpoint === 'extract' || endpoint === 'crawl') && mayBeAdvancedExtract(body)) {
      return `tavily-pool: this client token may not make "advanced" requests (extract_depth "${String(body.extract_depth)}"); use extract_depth "basic".`;
    }
  }
  if (c.research_pro === false && endpoint === 'research' && researchModel(body) === 'pro') {
    const model = body.model === undefined || body.model === null ? 'no model (Tavily then chooses, and may choose pro)' : `model "${String(body.model)}"${body.model === 'auto' ? ' (which may choose pro)' : ''}`;
    return `tavily-pool: this client token may not start research with the pro model (${model}); use model "mini".`;
  }
  if (c.max_results !== undefined) {
    const asked = ENDPOINTS[endpoint].asks?.(body);
    if (asked && asked.count > c.max_results) {
      const given = body[asked.field] === undefined || body[asked.field] === null ? `${asked.field} not set: Tavily's default is ${asked.count}` : `${asked.field} ${asked.count}`;
      return `tavily-pool: this client token may ask for at most ${c.max_results} results (${given}).`;
    }
  }
  if (c.max_credits !== undefined && most > c.max_credits) {
    return `tavily-pool: this request may cost up to ${count(most, 'credit')} at Tavily's prices; this client token may spend at most ${c.max_credits} on one request.`;
  }
  return null;
}

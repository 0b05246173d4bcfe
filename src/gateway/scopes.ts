import { BlockList, isIP } from 'node:net';
import { ENDPOINTS, type EndpointName, mayBeAdvancedExtract, mayBeAdvancedSearch, researchModel } from './endpoints.js';
import { count } from '../text.js';
import type { RequestCaps, ScopeEndpoint } from '../admin/token-schemas.js';

/** What a token may do, as stored (null: no limit of that kind). */
export interface TokenScopes {
  endpoints: ScopeEndpoint[] | null;
  networks: string[] | null;
  expiresAt: string | null;
  caps: RequestCaps | null;
}

/** `10.0.0.0/8`, `2001:db8::/32`, or one address. Throws a sentence naming what is wrong. */
export function parseCidr(text: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } {
  const [address = '', prefixText, extra] = text.trim().split('/');
  const v = isIP(address);
  if (extra !== undefined || v === 0) throw new Error(`"${text}" is not an IPv4 or IPv6 network (such as 10.0.0.0/8 or 2001:db8::/32)`);
  const max = v === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (!/^\d+$/.test(prefixText ?? String(max)) || prefix > max) throw new Error(`"${text}": the prefix length must be 0 to ${max}`);
  return { address, prefix, family: v === 4 ? 'ipv4' : 'ipv6' };
}

/** A list of networks an address is checked against (IPv4-mapped IPv6 addresses count as IPv4). */
export class Networks {
  readonly #list = new BlockList();

  constructor(cidrs: readonly string[]) {
    for (const c of cidrs) {
      const n = parseCidr(c);
      this.#list.addSubnet(n.address, n.prefix, n.family);
    }
  }

  has(address: string | null | undefined): boolean {
    if (!address) return false;
    const plain = address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
    const v = isIP(plain);
    if (v === 0) return false;
    return this.#list.check(plain, v === 4 ? 'ipv4' : 'ipv6');
  }
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

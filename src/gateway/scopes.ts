import { BlockList, isIP } from 'node:net';
import { ENDPOINTS, type EndpointName } from './endpoints.js';
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
 * refused request spends neither a key nor the token's budget or RPM allowance.
 */
export function scopeRefusal(s: CompiledScopes | null, endpoint: EndpointName, body: Record<string, unknown>, remote: string | null | undefined): string | null {
  if (!s) return null;
  if (!endpointAllowed(s, endpoint)) {
    return `tavily-pool: this client token may not use ${scopeOf(endpoint)} (it may use: ${[...s.allowed!].join(', ')}).`;
  }
  if (s.nets && !s.nets.has(remote)) {
    return `tavily-pool: this client token may not be used from ${remote ?? 'an unknown address'} (its networks: ${s.networks!.join(', ')}).`;
  }
  const c = s.caps;
  if (!c || endpoint === 'research.get' || endpoint === 'feedback') return null;
  if (c.advanced === false && (body.search_depth === 'advanced' || body.extract_depth === 'advanced')) {
    return `tavily-pool: this client token may not make "advanced" requests; use search_depth "basic".`;
  }
  if (c.research_pro === false && endpoint === 'research' && body.model === 'pro') {
    return 'tavily-pool: this client token may not start research with the pro model; use "mini" or "auto".';
  }
  if (c.max_results !== undefined) {
    const asked = endpoint === 'search' ? body.max_results : endpoint === 'crawl' || endpoint === 'map' ? body.limit : undefined;
    if (typeof asked === 'number' && asked > c.max_results) {
      return `tavily-pool: this client token may ask for at most ${c.max_results} results (${endpoint === 'search' ? 'max_results' : 'limit'} ${asked}).`;
    }
  }
  if (c.max_credits !== undefined) {
    // The published cost of what was asked (for an extract, the URLs sent).
    const response = endpoint === 'extract' ? { results: Array.isArray(body.urls) ? body.urls : [body.urls] } : {};
    const cost = ENDPOINTS[endpoint].estimate(body, response);
    if (cost > c.max_credits) return `tavily-pool: this request costs ${cost} credits at Tavily's prices; this client token may spend at most ${c.max_credits} on one request.`;
  }
  return null;
}

import { BlockList, isIP } from 'node:net';

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

/** Splits a list such as ALERT_SINK_ALLOW into networks and host names; throws a sentence naming a bad entry. */
export function parseAllowList(entries: readonly string[]): { networks: string[]; hosts: string[] } {
  const networks: string[] = [];
  const hosts: string[] = [];
  for (const raw of entries) {
    const e = raw.trim().toLowerCase().replace(/^\[|\]$/g, '');
    if (!e) continue;
    if (isIP(e.split('/')[0]!) !== 0) {
      parseCidr(e);
      networks.push(e);
    } else if (/^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*\.?$/.test(e)) {
      hosts.push(e.replace(/\.$/, ''));
    } else {
      throw new Error(`"${raw}" is neither a network (such as 10.1.2.0/24 or 192.168.1.5) nor a host name (such as alerts.internal)`);
    }
  }
  return { networks, hosts };
}

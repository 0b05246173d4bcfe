import dns from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import { Networks, parseAllowList } from '../net.js';

/**
 * Addresses an alert sink may not reach unless allowed: loopback, private networks, link-local
 * (cloud metadata services live at 169.254.169.254), carrier-grade NAT, multicast and the
 * reserved ranges. An admin who sets a sink's URL could otherwise make the server call its own
 * admin API or a service only the server's network reaches.
 */
export const PRIVATE_NETWORKS = [
  '0.0.0.0/8',
  '10.0.0.0/8',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.0.0.0/24',
  '192.168.0.0/16',
  '198.18.0.0/15',
  '224.0.0.0/4',
  '240.0.0.0/4',
  '::/128',
  '::1/128',
  '64:ff9b:1::/48',
  'fc00::/7',
  'fe80::/10',
  'ff00::/8',
] as const;

export interface DestinationPolicy {
  /** ALERT_SINK_DENY_PRIVATE: refuse the networks above (default true). */
  denyPrivate: boolean;
  /** ALERT_SINK_ALLOW: networks (10.1.2.0/24, one address) and host names allowed even so. */
  allow: readonly string[];
}

/** A destination refused by the policy; `message` says which address and how to allow it. */
export class DestinationRefused extends Error {
  readonly code = 'ESINKDENIED';
}

/**
 * Decides which hosts and addresses alert sinks may reach. Checked when a sink is saved (an
 * address written in the URL, localhost) and again on every send, at the moment of connecting
 * (each address the name resolves to), so a name that resolves elsewhere later is caught too.
 */
export class DestinationGuard {
  readonly #deny: Networks | null;
  readonly #allow: Networks;
  readonly #hosts: Set<string>;

  constructor(policy: DestinationPolicy) {
    const { networks, hosts } = parseAllowList(policy.allow);
    this.#deny = policy.denyPrivate ? new Networks(PRIVATE_NETWORKS) : null;
    this.#allow = new Networks(networks);
    this.#hosts = new Set(hosts);
  }

  /** False when nothing is refused: the sender then needs no checks at all. */
  get active(): boolean {
    return this.#deny !== null;
  }

  /** Why `address` may not be reached, or null when it may. */
  refusal(address: string, host = address): string | null {
    if (!this.#deny || !this.#deny.has(address) || this.#allow.has(address)) return null;
    const where = host === address ? address : `${host} (${address})`;
    return `${where} is a loopback, private or reserved address, which alert sinks may not reach (ALERT_SINK_DENY_PRIVATE); list it in ALERT_SINK_ALLOW to allow it`;
  }

  /** A host name allowed by name: its addresses are not checked. */
  #allowedByName(host: string): boolean {
    return this.#hosts.has(host.toLowerCase().replace(/\.$/, ''));
  }

  /**
   * What can be known without a DNS query: an address written in the URL, or a localhost name.
   * Null when the URL may be saved.
   */
  refusalOfUrl(url: string): string | null {
    if (!this.#deny) return null;
    let host: string;
    try {
      host = new URL(url).hostname.replace(/^\[|\]$/g, '');
    } catch {
      return null;
    }
    if (this.#allowedByName(host)) return null;
    if (isIP(host) !== 0) return this.refusal(host);
    if (/(^|\.)localhost\.?$/i.test(host)) return this.refusal('127.0.0.1', host);
    return null;
  }

  /**
   * Resolves the URL's host and checks every address (for sends through an HTTP proxy, which
   * resolves the name itself): the refusal, or null.
   */
  async refusalOfResolved(url: string): Promise<string | null> {
    const quick = this.refusalOfUrl(url);
    if (quick || !this.#deny) return quick;
    const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
    if (isIP(host) !== 0 || this.#allowedByName(host)) return null;
    let found: dns.LookupAddress[];
    try {
      found = await dns.promises.lookup(host, { all: true });
    } catch {
      return null; // The send fails with the resolver's own error.
    }
    for (const a of found) {
      const why = this.refusal(a.address, host);
      if (why) return why;
    }
    return null;
  }

  /**
   * A `lookup` for net.connect: resolves as dns.lookup does, and fails with DestinationRefused
   * when any address the name has is refused, so the socket never opens to it.
   */
  readonly lookup: LookupFunction = (hostname, options, callback) => {
    dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
      const cb = callback as (err: NodeJS.ErrnoException | null, address: string | dns.LookupAddress[], family?: number) => void;
      if (err) return cb(err, options.all ? [] : '', undefined);
      if (!this.#allowedByName(hostname)) {
        for (const a of addresses) {
          const why = this.refusal(a.address, hostname);
          if (why) return cb(new DestinationRefused(why), options.all ? [] : '', undefined);
        }
      }
      if (options.all) return cb(null, addresses);
      const first = addresses[0];
      if (!first) return cb(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), '', undefined);
      cb(null, first.address, first.family);
    });
  };
}

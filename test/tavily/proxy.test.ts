import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, test } from 'node:test';
import { loadConfig } from '../../src/config.js';
import { TavilyClient } from '../../src/tavily/client.js';
import { FakeTavily, defaultUsage } from '../support/fake-tavily.js';

/** A forward proxy on 127.0.0.1, as a company's egress proxy: CONNECT tunnels and absolute-form requests. */
class TestProxy {
  tunnels = 0;
  forwarded = 0;
  readonly #server: http.Server;
  readonly #sockets = new Set<net.Socket>();
  url = '';

  constructor() {
    this.#server = http.createServer((req, res) => {
      // Absolute-form: GET http://host:port/path
      this.forwarded++;
      const target = new URL(req.url!);
      const upstream = http.request(
        { host: target.hostname, port: target.port, path: target.pathname + target.search, method: req.method, headers: req.headers },
        (r) => {
          res.writeHead(r.statusCode!, r.headers);
          r.pipe(res);
        },
      );
      req.pipe(upstream);
    });
    this.#server.on('connect', (req, client: net.Socket, head) => {
      this.tunnels++;
      const [host, port] = req.url!.split(':');
      const upstream = net.connect(Number(port), host, () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        upstream.write(head);
        upstream.pipe(client);
        client.pipe(upstream);
      });
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
      this.#sockets.add(client).add(upstream);
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((r) => this.#server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  get used(): number {
    return this.tunnels + this.forwarded;
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    this.#server.closeAllConnections();
    await new Promise<void>((r) => this.#server.close(() => r()));
  }
}

describe('upstream calls through an HTTP proxy (HTTP_PROXY, HTTPS_PROXY, NO_PROXY)', () => {
  let fake: FakeTavily;
  let proxy: TestProxy;
  before(async () => {
    fake = await FakeTavily.start();
    proxy = new TestProxy();
    await proxy.start();
  });
  after(async () => {
    await proxy.close();
    await fake.close();
  });
  beforeEach(() => {
    proxy.tunnels = 0;
    proxy.forwarded = 0;
  });

  test('the configured proxy carries /usage and forwarded requests', async () => {
    const config = loadConfig({ HTTP_PROXY: proxy.url, TAVILY_BASE_URL: fake.url });
    const client = new TavilyClient({ baseUrl: config.tavilyBaseUrl, proxy: config.proxy });
    try {
      const key = 'tvly-dev-viaproxy00001';
      const r = await client.usage(key, 2000);
      assert.equal(r.key.usage, defaultUsage(key).key.usage);
      const s = await client.forward({ method: 'POST', path: '/search', key, headers: { 'content-type': 'application/json' }, body: '{"query":"x"}', timeoutMs: 2000 });
      assert.equal(s.status, 200);
      assert.ok(proxy.used >= 1, 'the calls went through the proxy');
    } finally {
      await client.close();
    }
  });

  test('lower-case http_proxy works too; NO_PROXY hosts are reached directly', async () => {
    const viaLower = new TavilyClient({ baseUrl: fake.url, proxy: loadConfig({ http_proxy: proxy.url }).proxy });
    await viaLower.usage('tvly-dev-viaproxy00002', 2000);
    await viaLower.close();
    assert.ok(proxy.used >= 1);

    proxy.tunnels = 0;
    proxy.forwarded = 0;
    const direct = new TavilyClient({ baseUrl: fake.url, proxy: loadConfig({ HTTP_PROXY: proxy.url, NO_PROXY: '127.0.0.1' }).proxy });
    await direct.usage('tvly-dev-viaproxy00003', 2000);
    await direct.close();
    assert.equal(proxy.used, 0, 'NO_PROXY bypassed the proxy');
  });

  test('a proxy URL that is not one stops the start with the variable named', () => {
    assert.throws(() => loadConfig({ HTTPS_PROXY: 'not a url' }), /HTTPS_PROXY: expected a proxy URL/);
    assert.throws(() => loadConfig({ HTTPS_PROXY: 'ftp://user:secret@proxy' }), (err: Error) => /HTTPS_PROXY/.test(err.message) && !err.message.includes('secret'));
  });
});

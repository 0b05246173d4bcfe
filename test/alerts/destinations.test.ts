import assert from 'node:assert/strict';
import dns from 'node:dns';
import net from 'node:net';
import os from 'node:os';
import { test } from 'node:test';
import { DestinationGuard } from '../../src/alerts/destinations.js';
import { SinkSender } from '../../src/alerts/sinks.js';
import { ConfigError, loadConfig } from '../../src/config.js';
import { Receiver } from '../support/receiver.js';

const deny = new DestinationGuard({ denyPrivate: true, allow: [] });

test('loopback, private, link-local and reserved addresses are refused; public ones are not', () => {
  const refused = ['127.0.0.1', '127.8.9.10', '10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '224.0.0.1', '255.255.255.255', '::1', '::', 'fe80::1', 'fd00::1', 'fc00::1', '::ffff:127.0.0.1', '::ffff:7f00:1', '::ffff:10.0.0.1'];
  for (const a of refused) assert.match(deny.refusal(a) ?? '', /may not reach \(ALERT_SINK_DENY_PRIVATE\); list it in ALERT_SINK_ALLOW/, a);
  for (const a of ['8.8.8.8', '1.1.1.1', '172.32.0.1', '192.169.0.1', '2606:4700::1111', '::ffff:8.8.8.8']) assert.equal(deny.refusal(a), null, a);
});

test('a URL is refused by the address written in it, in any of its spellings, or by a localhost name', () => {
  for (const url of ['http://127.0.0.1:8080/api/v1/admin/tavily-keys/export', 'http://2130706433/', 'http://0x7f.1/', 'http://127.1/', 'http://[::1]:80/', 'http://[::ffff:127.0.0.1]/', 'http://169.254.169.254/latest/meta-data/', 'https://localhost/', 'http://LOCALHOST./x', 'http://api.localhost/']) {
    assert.ok(deny.refusalOfUrl(url), url);
  }
  assert.equal(deny.refusalOfUrl('https://hooks.slack.com/services/T0/B0/x'), null);
  assert.equal(deny.refusalOfUrl('https://93.184.215.14/hook'), null);
});

test('ALERT_SINK_ALLOW lets networks and host names through; ALERT_SINK_DENY_PRIVATE=false lets all', () => {
  const allow = new DestinationGuard({ denyPrivate: true, allow: ['10.1.0.0/16', '192.168.1.5', 'alerts.internal', 'localhost'] });
  assert.equal(allow.refusal('10.1.200.3'), null);
  assert.ok(allow.refusal('10.2.0.1'));
  assert.equal(allow.refusal('192.168.1.5'), null);
  assert.ok(allow.refusal('192.168.1.6'));
  assert.equal(allow.refusalOfUrl('http://localhost:9093/'), null);
  assert.equal(allow.refusalOfUrl('http://ALERTS.internal/hook'), null);
  const open = new DestinationGuard({ denyPrivate: false, allow: [] });
  assert.equal(open.active, false);
  assert.equal(open.refusalOfUrl('http://127.0.0.1/'), null);

  assert.deepEqual(loadConfig({ ALERT_SINK_ALLOW: '10.0.0.0/8, alerts.internal' }).alerts.allow, ['10.0.0.0/8', 'alerts.internal']);
  assert.equal(loadConfig({}).alerts.denyPrivate, true);
  assert.equal(loadConfig({ ALERT_SINK_DENY_PRIVATE: 'false' }).alerts.denyPrivate, false);
  assert.throws(() => loadConfig({ ALERT_SINK_ALLOW: '10.0.0.0/99' }), (e: unknown) => e instanceof ConfigError && /ALERT_SINK_ALLOW.*prefix length must be 0 to 32/.test(e.message));
  assert.throws(() => loadConfig({ ALERT_SINK_ALLOW: 'http://x/' }), (e: unknown) => e instanceof ConfigError && /neither a network .* nor a host name/.test(e.message));
});

test('the connection itself is refused when a name resolves to a refused address', async () => {
  const server = net.createServer((s) => s.end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const connect = (guard: DestinationGuard) =>
    new Promise<string>((resolve) => {
      const s = net.connect({ host: 'localhost', port, family: 4, lookup: guard.lookup });
      s.on('connect', () => {
        s.destroy();
        resolve('connected');
      });
      s.on('error', (err: NodeJS.ErrnoException) => resolve(`${err.code}: ${err.message}`));
    });
  try {
    assert.match(await connect(deny), /^ESINKDENIED: localhost \(127\.0\.0\.1\) is a loopback, private or reserved address/);
    assert.equal(await connect(new DestinationGuard({ denyPrivate: true, allow: ['localhost'] })), 'connected');
    assert.equal(await connect(new DestinationGuard({ denyPrivate: true, allow: ['127.0.0.0/8'] })), 'connected');
  } finally {
    await new Promise((r) => server.close(r));
  }
});

test('a webhook under a name that resolves to loopback is not sent to; the sender says why', async (t) => {
  // A name other than localhost that resolves to this machine: its host name, on most machines.
  const host = os.hostname();
  const found = await dns.promises.lookup(host, { all: true }).catch(() => []);
  if (found.length === 0 || !found.every((a) => deny.refusal(a.address))) {
    t.skip(`${host} does not resolve to loopback only here: the connection-time check is covered by the test above`);
    return;
  }
  const rx = await Receiver.start();
  const port = new URL(rx.base).port;
  const sink = { id: 1, name: 'ops', kind: 'webhook' as const, target: `http://${host}:${port}/hook`, secret: null, chatId: null };
  const event = { id: 1, type: 'test' as const, created_at: new Date().toISOString(), summary: 'test', data: {} };
  const direct = new SinkSender({ timeoutMs: 2000, telegramApiUrl: 'http://127.0.0.1:9', guard: deny });
  const proxied = new SinkSender({ timeoutMs: 2000, telegramApiUrl: 'http://127.0.0.1:9', guard: deny, proxy: { httpProxy: 'http://127.0.0.1:9' } });
  try {
    assert.equal(deny.refusalOfUrl(sink.target), null, 'the name alone says nothing: the check is at connection time');
    const r = await direct.send(sink, [event]);
    assert.equal(r.ok, false);
    assert.match(r.error ?? '', new RegExp(`^not sent: ${host} \\(127\\.\\d+\\.\\d+\\.\\d+\\) is a loopback`));
    // Through a proxy the name is resolved and checked before the proxy is asked.
    const p = await proxied.send(sink, [event]);
    assert.match(p.error ?? '', /^not sent: .* is a loopback/);
    assert.equal(rx.requests.length, 0, 'the receiver never heard from it');
    const allowed = new SinkSender({ timeoutMs: 2000, telegramApiUrl: 'http://127.0.0.1:9', guard: new DestinationGuard({ denyPrivate: true, allow: [host] }) });
    assert.equal((await allowed.send(sink, [event])).ok, true);
    await allowed.close();
  } finally {
    await Promise.all([direct.close(), proxied.close(), rx.close()]);
  }
});

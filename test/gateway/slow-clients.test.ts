import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { request } from 'undici';
import { type TestApp, fakeUpstream } from '../support/app.js';
import { describeEachDialect } from '../support/db.js';
import { until } from '../support/receiver.js';

interface Trickle {
  /** Everything the server sent. */
  received: () => string;
  /** Resolves when the server closed the connection (true), or false if `withinMs` passed first. */
  closed: (withinMs: number) => Promise<boolean>;
  stop: () => void;
}

/**
 * A client that sends a request's head, then its body one byte every `everyMs`, as a slowloris
 * attack does. Stops by itself after `maxBytes`.
 */
function trickle(port: number, head: string, everyMs: number, maxBytes = 10_000): Trickle {
  const socket = net.connect(port, '127.0.0.1');
  let received = '';
  let isClosed = false;
  const closeWaiters: (() => void)[] = [];
  socket.setEncoding('utf8');
  socket.on('data', (d) => (received += d));
  socket.on('error', () => {});
  socket.on('close', () => {
    isClosed = true;
    for (const w of closeWaiters) w();
  });
  let sent = 0;
  const chunked = /transfer-encoding: chunked/i.test(head);
  const timer = setInterval(() => {
    if (isClosed || sent >= maxBytes) return clearInterval(timer);
    socket.write(chunked ? '1\r\nx\r\n' : 'x');
    sent++;
  }, everyMs);
  socket.write(head);
  return {
    received: () => received,
    closed: (withinMs) =>
      isClosed
        ? Promise.resolve(true)
        : new Promise((resolve) => {
            const t = setTimeout(() => resolve(false), withinMs);
            closeWaiters.push(() => {
              clearTimeout(t);
              resolve(true);
            });
          }),
    stop: () => {
      clearInterval(timer);
      socket.destroy();
    },
  };
}

async function token(t: TestApp): Promise<string> {
  await t.app.inject({ method: 'POST', url: '/api/v1/admin/tavily-keys', headers: t.auth, payload: { keys: ['tvly-dev-slowclient0001'] } });
  return (await t.app.inject({ method: 'POST', url: '/api/v1/admin/tokens', headers: t.auth, payload: { name: 'agent' } })).json().token;
}

describeEachDialect('slow and unauthenticated clients are cut by limits', (dialect) => {
  const up = fakeUpstream(dialect);

  test('a body trickled a byte at a time is cut at REQUEST_TIMEOUT_MS with 408, authenticated or not', () =>
    up.withApp({ REQUEST_TIMEOUT_MS: '1000' }, async (t) => {
      const tok = await token(t);
      await t.app.listen({ port: 0, host: '127.0.0.1' });
      const port = (t.app.server.address() as net.AddressInfo).port;
      const heads = [
        // A token in the header: authenticated, then the body never completes.
        `POST /search HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${tok}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n`,
        // No token in the header (it might come as api_key in the body): the body is awaited, within the limit.
        'POST /search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n',
        // The admin API, a chunked body.
        `POST /api/v1/admin/tavily-keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${t.auth.authorization.slice(7)}\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n`,
      ];
      const clients = heads.map((h) => trickle(port, h, 100));
      try {
        // The bound below is a failure bound, not a measurement: without the limit these
        // connections stay open for as long as the client keeps sending.
        const closed = await Promise.all(clients.map((c) => c.closed(10_000)));
        assert.deepEqual(closed, [true, true, true], 'every trickling connection was closed');
        for (const c of clients) {
          assert.match(c.received(), /^HTTP\/1\.1 408 /, c.received());
          assert.match(c.received(), /did not arrive in full within 1000 ms \(REQUEST_TIMEOUT_MS\)/);
        }
      } finally {
        for (const c of clients) c.stop();
      }
    }));

  test('a request with a wrong token in its header is answered at once and its connection closed', () =>
    up.withApp({ REQUEST_TIMEOUT_MS: '60000' }, async (t) => {
      await token(t);
      await t.app.listen({ port: 0, host: '127.0.0.1' });
      const port = (t.app.server.address() as net.AddressInfo).port;
      const clients = [
        trickle(port, 'POST /search HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tp_wrong\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n', 100),
        trickle(port, 'POST /api/v1/admin/tavily-keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong-admin-token\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n', 100),
      ];
      try {
        // REQUEST_TIMEOUT_MS is a minute here: only the early answer can close them this soon.
        const closed = await Promise.all(clients.map((c) => c.closed(5_000)));
        assert.deepEqual(closed, [true, true]);
        assert.match(clients[0]!.received(), /^HTTP\/1\.1 401 [\s\S]*tavily-pool: unknown client token/);
        assert.match(clients[1]!.received(), /^HTTP\/1\.1 401 [\s\S]*wrong admin token/);
      } finally {
        for (const c of clients) c.stop();
      }
    }));

  test('a client that hangs up while sending its request is logged at info and counted as 499, never as an error', () =>
    up.withApp({}, async (t) => {
      const tok = await token(t);
      await t.app.listen({ port: 0, host: '127.0.0.1' });
      const port = (t.app.server.address() as net.AddressInfo).port;
      const heads = [
        `POST /search HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${tok}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"query":`,
        `POST /mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${tok}\r\nAccept: application/json, text/event-stream\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"jsonrpc":`,
        `POST /api/v1/admin/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: ${t.auth.authorization}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"name":`,
      ];
      for (const head of heads) {
        const socket = net.connect(port, '127.0.0.1');
        socket.on('error', () => {});
        socket.write(head);
        await new Promise((r) => setTimeout(r, 100));
        socket.destroy();
      }
      const logged = () => t.logs.lines.map((l) => JSON.parse(l) as { level: number; msg: string });
      const gone = () => logged().filter((l) => l.msg === 'the client closed the connection before its request was read');
      // The admin API logs at info; the gateway's routes log from warn up (their traffic is
      // counted in the metrics instead), so there the hang-up is counted, not logged.
      await until(() => gone().length === 1, 'the admin hang-up to be logged');
      assert.deepEqual(gone().map((l) => l.level), [30], 'at info');
      await until(async () => /status="499"/.test(await t.ctx.metrics!.registry.getSingleMetricAsString('tavily_pool_requests_total')), 'the gateway hang-up to be counted');
      assert.deepEqual(logged().filter((l) => l.level >= 40).map((l) => l.msg), [], 'nothing logged as a warning or an error');
      const metrics = await t.ctx.metrics!.registry.getSingleMetricAsString('tavily_pool_requests_total');
      assert.match(metrics, /tavily_pool_requests_total\{[^}]*endpoint="search"[^}]*status="499"[^}]*\} 1/);
    }));

  test('a research event stream that lasts longer than REQUEST_TIMEOUT_MS is not cut', () =>
    up.withApp({ REQUEST_TIMEOUT_MS: '500' }, async (t) => {
      const tok = await token(t);
      up.fake.streamIntervalMs = 300;
      try {
        const url = await t.app.listen({ port: 0, host: '127.0.0.1' });
        const res = await request(`${url}/research`, {
          method: 'POST',
          headers: { authorization: `Bearer ${tok}`, 'content-type': 'application/json' },
          body: JSON.stringify({ input: 'a long stream', stream: true }),
        });
        assert.equal(res.statusCode, 200);
        const text = await res.body.text();
        assert.match(text, /event: done/, 'the stream ran to its end (about 1.2 s, past the 0.5 s limit)');
        assert.equal(up.fake.stats.streamsEnded, 1);
      } finally {
        up.fake.streamIntervalMs = 50;
      }
    }));
});

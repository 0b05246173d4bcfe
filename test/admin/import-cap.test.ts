import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { startTestApp } from '../support/app.js';
import { describeEachDialect } from '../support/db.js';

/**
 * Sends a big import over a real connection, as fast as the server takes it, and stops when
 * the answer arrives. Returns the answer and how many body bytes were sent by then.
 */
async function send(port: number, head: string, parts: Iterable<string>, total: number): Promise<{ answer: string; sent: number }> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  let answer = '';
  let sent = 0;
  let answered = false;
  const done = new Promise<void>((resolve) => {
    socket.on('data', (d) => {
      answer += d;
      answered = true;
      // The answer is in: this client stops sending and goes.
      if (/\r\n\r\n[\s\S]*\}$/.test(answer)) socket.destroy();
    });
    socket.on('close', () => resolve());
  });
  socket.write(head.replace('{length}', String(total)));
  for (const part of parts) {
    if (answered || socket.destroyed) break;
    const buf = Buffer.from(part);
    sent += buf.length;
    if (!socket.write(buf)) await new Promise<void>((r) => socket.once('drain', r).once('close', r));
  }
  await done;
  return { answer, sent };
}

describeEachDialect('the 100,000-key cap', (dialect) => {
  test('a million keys, as text or JSON, are refused (413) while the body arrives, with nothing added', async () => {
    const t = await startTestApp(dialect, { env: { IMPORT_BODY_LIMIT_BYTES: String(64 * 1024 * 1024) } });
    try {
      await t.app.listen({ port: 0, host: '127.0.0.1' });
      const port = (t.app.server.address() as net.AddressInfo).port;
      const million = 1_000_000;
      const line = (i: number) => `tvly-dev-million${String(i).padStart(8, '0')}`;
      function* lines(sep: string, prefix = '', suffix = '') {
        yield prefix;
        const batch = 2000;
        for (let i = 0; i < million; i += batch) yield Array.from({ length: Math.min(batch, million - i) }, (_, j) => line(i + j)).join(sep) + (i + batch < million ? sep : '');
        yield suffix;
      }
      const textTotal = million * (line(0).length + 1) - 1;
      const jsonTotal = million * (line(0).length + 3) - 1 + '{"keys":['.length + ']}'.length;
      for (const [kind, head, parts, total] of [
        ['text', 'POST /api/v1/admin/tavily-keys HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Type: text/plain\r\nContent-Length: {length}\r\n\r\n', lines('\n'), textTotal],
        ['JSON', 'POST /api/v1/admin/tavily-keys HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n', (function* () {
          for (const p of lines('","', '{"keys":["', '"]}')) yield p;
        })(), jsonTotal],
      ] as const) {
        const r = await send(port, head.replace('{auth}', t.auth.authorization), parts, total);
        assert.match(r.answer, /^HTTP\/1\.1 413 /, `${kind}: ${r.answer.slice(0, 300)}`);
        assert.match(r.answer, /"code":"too_many_keys"/);
        // The refusal came after about 100,000 keys (~2.5 MB), not after the whole body (~25 MB).
        assert.ok(r.sent < total / 2, `${kind}: ${r.sent} of ${total} bytes were sent before the answer`);
      }
      const n = await t.ctx.parts.database.db.selectFrom('tavily_keys').select((eb) => eb.fn.countAll().as('n')).executeTakeFirst();
      assert.equal(Number(n!.n), 0, 'nothing was added');
    } finally {
      await t.close();
    }
  });
});

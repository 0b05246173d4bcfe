import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { tempDir } from '../support/db.js';
import { FakeTavily } from '../support/fake-tavily.js';
import { Receiver, until } from '../support/receiver.js';
import { type Server, startServer } from '../support/server.js';

const ADMIN = 'alerts-restart-admin-token';
const admin = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };

let fake: FakeTavily;
let rx: Receiver;
const servers: Server[] = [];
before(async () => {
  fake = await FakeTavily.start();
  rx = await Receiver.start();
});
after(async () => {
  for (const s of servers) if (s.child.exitCode === null) s.child.kill('SIGKILL');
  await rx.close();
  await fake.close();
});

test('a server killed with SIGKILL between the change and the delivery delivers the event after a restart', async () => {
  const env = {
    ADMIN_TOKEN: ADMIN,
    DATA_DIR: tempDir('tavily-pool-alerts-restart-'),
    TAVILY_BASE_URL: fake.url,
    REFRESH_ON_START: 'false',
    VALIDATE_ON_IMPORT: 'false',
    ALERT_POLL_MS: '50',
    ALERT_RETRY_BASE_MS: '50',
    // A claim lapses 5 s after the send's deadline: then the restarted server sends it again.
    ALERT_TIMEOUT_MS: '500',
    // The receiver listens on 127.0.0.1.
    ALERT_SINK_ALLOW: '127.0.0.1',
  };
  const a = await startServer(env);
  servers.push(a);
  const post = (url: string, path: string, body: object) => fetch(`${url}${path}`, { method: 'POST', headers: admin, body: JSON.stringify(body) });
  assert.equal((await post(a.url, '/api/v1/admin/alerts/sinks', { name: 'ops', kind: 'webhook', url: rx.url('/hook'), events: ['key.invalid'] })).status, 201);
  assert.equal((await post(a.url, '/api/v1/admin/tavily-keys', { keys: ['tvly-dev-invalid-killed001'] })).status, 201);

  // The receiver takes the first delivery and never answers: the server dies while it waits.
  rx.plan = ['hang'];
  assert.equal((await post(a.url, '/api/v1/admin/tavily-keys/refresh-quota', {})).status, 200);
  await until(() => rx.requests.length === 1, 'the first delivery attempt');
  a.child.kill('SIGKILL');
  await a.exited;
  const sent = JSON.parse(rx.requests[0]!.body) as { events: Array<{ id: number; type: string }> };
  assert.deepEqual(sent.events.map((e) => e.type), ['key.invalid']);
  assert.equal(rx.acknowledged.length, 0);

  const b = await startServer(env);
  servers.push(b);
  await until(() => rx.acknowledged.length === 1, 'the delivery after the restart', 30_000);
  const again = rx.json<{ events: Array<{ id: number; type: string }> }>()[0]!;
  assert.deepEqual(again.events.map((e) => e.id), sent.events.map((e) => e.id), 'the same event, by its id');

  const events = (await (await fetch(`${b.url}/api/v1/admin/alerts/events?type=key.invalid`, { headers: admin })).json()) as { items: Array<{ deliveries: Array<{ state: string; attempts: number }> }> };
  assert.equal(events.items.length, 1);
  assert.equal(events.items[0]!.deliveries[0]!.state, 'delivered');
  assert.equal(events.items[0]!.deliveries[0]!.attempts, 2);
  b.child.kill('SIGTERM');
  assert.equal(await b.exited, 0);
});

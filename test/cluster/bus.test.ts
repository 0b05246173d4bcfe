import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { type BusHandlers, PgBus, type SyncItem, decodePayload, encodeItems } from '../../src/cluster/bus.js';

async function listening(bus: PgBus, handlers: BusHandlers): Promise<PgBus> {
  await bus.listen(handlers);
  return bus;
}
import type { Database } from '../../src/db/schema.js';
import { createLogger } from '../../src/logger.js';
import { LogSink } from '../support/app.js';
import { dialects } from '../support/db.js';
import { until } from '../support/receiver.js';

const manyItems = (n: number): SyncItem[] =>
  Array.from({ length: n }, (_, i): SyncItem => (i % 3 === 0 ? ['t', i, '2026-11', i / 4] : i % 3 === 1 ? ['r', i, 'active', 1000 - i] : ['c', i, 1_800_000_000_000 + i]));

describe('sync messages', () => {
  test('items are packed in order into payloads under PostgreSQL’s 8,000-byte limit', () => {
    let seq = 0;
    const items = manyItems(5000);
    const payloads = encodeItems('abc123', () => ++seq, items);
    assert.ok(payloads.length > 1, 'several payloads');
    for (const p of payloads) assert.ok(Buffer.byteLength(p) < 8000, `payload of ${Buffer.byteLength(p)} bytes`);
    const back = payloads.flatMap((p) => decodePayload('someone-else', p)!);
    assert.deepEqual(back, items);
    assert.equal(seq, payloads.length, 'each payload has its own sequence number');
  });

  test('an instance ignores its own notices and anything that is not one', () => {
    const [p] = encodeItems('me', () => 1, [['T']]);
    assert.equal(decodePayload('me', p!), null);
    assert.deepEqual(decodePayload('you', p!), [['T']]);
    assert.equal(decodePayload('you', 'not json'), null);
    assert.equal(decodePayload('you', '{"s":"x","i":"nope"}'), null);
    assert.deepEqual(decodePayload('you', '{"s":"x","i":[42,["K",7]]}'), [['K', 7]]);
  });
});

const postgres = dialects.find((d) => d.name === 'postgres')!;

if (postgres.skip) test('LISTEN/NOTIFY between instances', { skip: postgres.skip }, () => {});
else
  test('LISTEN/NOTIFY between instances: thousands of items in one transaction arrive on commit, in order, nowhere else', async () => {
    const db = await postgres.create();
    const other = await postgres.create();
    const log = createLogger('info', new LogSink());
    const heard: SyncItem[][] = [[], [], []];
    const handlers = (i: number) => ({ onItems: (items: SyncItem[]) => heard[i]!.push(...items), onResync: () => {} });
    const url = process.env.TEST_DATABASE_URL!;
    const a = await listening(new PgBus({ url, searchPath: db.open.pgSearchPath, log }), handlers(0));
    const b = await listening(new PgBus({ url, searchPath: db.open.pgSearchPath, log }), handlers(1));
    // Another deployment in another schema of the same database.
    const c = await listening(new PgBus({ url, searchPath: other.open.pgSearchPath, log }), handlers(2));
    const kdb = new Kysely<Database>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url, options: `-c search_path=${db.open.pgSearchPath}` }) }) });
    try {
      assert.notEqual(a.channel, c.channel);
      const items = manyItems(5000);
      await kdb.transaction().execute(async (trx) => {
        await a.publish(trx, items);
        await new Promise((r) => setTimeout(r, 100));
        assert.equal(heard[1]!.length, 0, 'nothing is delivered before the commit');
      });
      await until(() => heard[1]!.length >= items.length, 'B to hear every item');
      assert.deepEqual(heard[1], items);
      assert.equal(heard[0]!.length, 0, 'the sender does not hear itself');
      assert.equal(heard[2]!.length, 0, 'another schema does not hear it');

      await kdb.transaction().execute(async (trx) => {
        await a.publish(trx, [['T']]);
        throw new Error('rolled back');
      }).catch(() => {});
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(heard[1]!.length, items.length, 'a rolled-back transaction announces nothing');
    } finally {
      await Promise.all([a.close(), b.close(), c.close(), kdb.destroy()]);
      await db.cleanup();
      await other.cleanup();
    }
  });

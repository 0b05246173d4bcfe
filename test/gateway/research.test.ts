import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type TestApp, fakeUpstream, startTestApp } from '../support/app.js';
import { generateEncryptionKey, parseEncryptionKey } from '../../src/crypto.js';
import { describeEachDialect } from '../support/db.js';

async function token(t: TestApp, name: string): Promise<string> {
  const r = await t.app.inject({ method: 'POST', url: '/api/v1/admin/tokens', headers: t.auth, payload: { name } });
  assert.equal(r.statusCode, 201, r.body);
  return r.json().token;
}

const poll = (t: TestApp, id: string, tok: string) =>
  t.app.inject({ method: 'GET', url: `/research/${id}`, headers: { authorization: `Bearer ${tok}` } });

describeEachDialect('research tasks belong to the token that created them', (dialect) => {
  const up = fakeUpstream(dialect);

  test('another token polling the task gets 404 and is not billed; the owner gets the report', async () => {
    const encryptionKey = parseEncryptionKey(generateEncryptionKey());
    const t = await startTestApp(dialect, { tavilyBaseUrl: up.fake.url, encryptionKey });
    try {
      const add = await t.app.inject({ method: 'POST', url: '/api/v1/admin/tavily-keys', headers: t.auth, payload: { keys: ['tvly-dev-tenancy000001'] } });
      assert.equal(add.statusCode, 201);
      const owner = await token(t, 'owner');
      const other = await token(t, 'other');
      const created = await t.app.inject({ method: 'POST', url: '/research', headers: { authorization: `Bearer ${owner}` }, payload: { input: 'a private topic' } });
      assert.equal(created.statusCode, 201, created.body);
      const id = created.json().request_id as string;

      const stolen = await poll(t, id, other);
      assert.equal(stolen.statusCode, 404, stolen.body);
      assert.deepEqual(stolen.json(), { detail: { error: 'Research task not found.' } });
      assert.equal(up.fake.stats.requests.get('/research/:id') ?? 0, 0, 'the poll never reached Tavily');

      // The same from a second instance on the same database, which finds the task's owner there.
      await t.ctx.parts.outbox.flush();
      const second = await startTestApp(dialect, { tavilyBaseUrl: up.fake.url, database: t.db, encryptionKey });
      try {
        const stolenThere = await poll(second, id, other);
        assert.equal(stolenThere.statusCode, 404, stolenThere.body);
        assert.equal(up.fake.stats.requests.get('/research/:id') ?? 0, 0);
      } finally {
        await second.close();
      }

      const mine = await poll(t, id, owner);
      assert.equal(mine.statusCode, 200, mine.body);
      assert.equal(mine.json().content, 'A research report.');
      await t.ctx.parts.outbox.flush();
      const spend = await t.ctx.parts.database.db.selectFrom('client_tokens').select(['name', 'month_spent']).orderBy('id').execute();
      assert.deepEqual(spend, [
        { name: 'owner', month_spent: 4 },
        { name: 'other', month_spent: 0 },
      ]);
    } finally {
      await t.close();
    }
  });
});

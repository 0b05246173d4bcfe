import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type TestApp, fakeUpstream } from '../support/app.js';
import { describeEachDialect } from '../support/db.js';

/**
 * Big admin jobs share the event loop with the gateway: searches sent while one runs must be
 * answered while it runs, not after it. How long they wait is measured by `npm run
 * bench:admin`; here only what happens in between is counted, which holds on any machine.
 * The job and the searches are sent in-process, so nothing overlaps but the server's own work.
 */
describeEachDialect('big admin jobs leave the gateway serving', (dialect) => {
  const up = fakeUpstream(dialect);

  /** Runs `job` while searching one search after another; counts the searches answered and the event-loop turns meanwhile. */
  async function during(t: TestApp, token: string, job: () => Promise<number>): Promise<{ status: number; searches: number; turns: number }> {
    let done = false;
    let searches = 0;
    let turns = 0;
    const ticker = setInterval(() => turns++, 1);
    const running = job().finally(() => {
      done = true;
      clearInterval(ticker);
    });
    const searching = (async () => {
      while (!done) {
        const r = await t.app.inject({ method: 'POST', url: '/search', headers: { authorization: `Bearer ${token}` }, payload: { query: 'meanwhile' } });
        if (!done && r.statusCode === 200) searches++;
      }
    })();
    const status = await running;
    await searching;
    return { status, searches, turns };
  }

  test('a 50,000-key import, their export and a bulk delete each let the event loop turn and searches through', () =>
    up.withApp({}, async (t) => {
      await t.app.inject({ method: 'POST', url: '/api/v1/admin/tavily-keys', headers: t.auth, payload: { keys: ['tvly-dev-bigjobsearch001'] } });
      const token = (await t.app.inject({ method: 'POST', url: '/api/v1/admin/tokens', headers: t.auth, payload: { name: 'agent' } })).json().token as string;
      const n = 50_000;
      const keys = Array.from({ length: n }, (_, i) => `tvly-dev-bigjob${String(i).padStart(8, '0')}`);
      let firstId = 0;
      // A job that held the loop from start to end would see no search answered and a turn or two.
      const expectServing = (what: string, r: { searches: number; turns: number }) => {
        assert.ok(r.searches >= 3, `${what}: ${r.searches} searches answered meanwhile`);
        assert.ok(r.turns >= 20, `${what}: the event loop turned ${r.turns} times meanwhile`);
      };

      const imported = await during(t, token, async () => {
        const r = await t.app.inject({ method: 'POST', url: '/api/v1/admin/tavily-keys', headers: { ...t.auth, 'content-type': 'text/plain' }, payload: keys.join('\n') });
        assert.equal(r.json().added, n);
        firstId = r.json().items[0].id;
        return r.statusCode;
      });
      assert.equal(imported.status, 201);
      expectServing('import', imported);

      const exported = await during(t, token, async () => {
        const r = await t.app.inject({ method: 'GET', url: '/api/v1/admin/tavily-keys/export', headers: t.auth });
        const lines = r.body.split('\n').filter(Boolean);
        assert.equal(lines.length, n + 1);
        assert.ok(lines.includes(keys[12_345]!), 'the export holds the keys in full');
        return r.statusCode;
      });
      assert.equal(exported.status, 200);
      expectServing('export', exported);

      const deleted = await during(t, token, async () => {
        const ids = Array.from({ length: n }, (_, i) => firstId + i);
        const r = await t.app.inject({ method: 'POST', url: '/api/v1/admin/tavily-keys/bulk', headers: t.auth, payload: { action: 'delete', ids } });
        assert.equal(r.json().affected, n);
        return r.statusCode;
      });
      assert.equal(deleted.status, 200);
      expectServing('bulk delete', deleted);
      assert.equal(t.ctx.parts.pool.size, 1, 'the pool holds what the database holds');
    }));
});

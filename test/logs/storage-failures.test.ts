import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sql } from 'kysely';
import type { TestApp } from '../support/app.js';
import { fakeUpstream, startTestApp } from '../support/app.js';
import { describeEachDialect } from '../support/db.js';

/**
 * Makes the database refuse to grow, as a full disk does: SQLite's max_page_count (SQLITE_FULL),
 * and on PostgreSQL a trigger raising disk_full (SQLSTATE 53100) on the tables that grow.
 */
async function fillDisk(t: TestApp): Promise<void> {
  const db = t.ctx.parts.database.db;
  if (t.ctx.parts.database.dialect === 'sqlite') {
    const { rows } = await sql<{ page_count: number }>`pragma page_count`.execute(db);
    await sql.raw(`pragma max_page_count = ${rows[0]!.page_count}`).execute(db);
    return;
  }
  await sql`create function disk_full() returns trigger language plpgsql as $$ begin raise exception 'could not extend file: No space left on device' using errcode = '53100'; end $$`.execute(db);
  for (const table of ['request_logs', 'tavily_keys']) {
    await sql`create trigger disk_full before insert on ${sql.table(table)} for each row execute function disk_full()`.execute(db);
  }
}

describeEachDialect('a full disk', (dialect) => {
  const up = fakeUpstream(dialect);

  test('is reported as what it is: /readyz 503 naming it, imports 503 storage_full, requests still served', async () => {
    // No timed flush while the 200 requests run: the one flush below must write all of them
    // (more than the free room of a page), whatever the machine's speed.
    const t = await startTestApp(dialect, { tavilyBaseUrl: up.fake.url, flushIntervalMs: 600_000 });
    try {
      const add = await t.app.inject({ method: 'POST', url: '/api/v1/admin/tavily-keys', headers: t.auth, payload: { keys: ['tvly-dev-fulldisk00001'] } });
      assert.equal(add.statusCode, 201);
      const tok = await t.app.inject({ method: 'POST', url: '/api/v1/admin/tokens', headers: t.auth, payload: { name: 'agent' } });
      const token = tok.json().token as string;
      assert.equal((await t.app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200);

      await fillDisk(t);
      const keys = Array.from({ length: 2000 }, (_, i) => `tvly-dev-fulldisk${String(i).padStart(6, '0')}`);
      const imp = await t.app.inject({ method: 'POST', url: '/api/v1/admin/tavily-keys', headers: t.auth, payload: { keys } });
      assert.equal(imp.statusCode, 503, imp.body);
      assert.equal(imp.json().error.code, 'storage_full');
      assert.match(imp.json().error.message, /database is full/);

      // The gateway still serves from memory; the log rows wait (enough of them to need a new page).
      for (let i = 0; i < 200; i++) {
        const r = await t.app.inject({ method: 'POST', url: '/search', headers: { authorization: `Bearer ${token}` }, payload: { query: `full ${i}` } });
        assert.equal(r.statusCode, 200, r.body);
      }
      await t.ctx.parts.outbox.flush();
      const ready = await t.app.inject({ method: 'GET', url: '/readyz' });
      assert.equal(ready.statusCode, 503, ready.body);
      const body = ready.json();
      assert.equal(body.request_log.failing, true);
      assert.equal(body.request_log.pending_rows, 200);
      assert.match(body.error, /request log cannot be written: .*(database or disk is full|No space left on device)/);
      assert.doesNotMatch(t.logs.text, /cannot rollback - no transaction is active/);
      assert.match(t.logs.text, /database or disk is full|No space left on device/);
    } finally {
      await t.close();
    }
  });
});

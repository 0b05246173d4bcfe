import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { KyselyPlugin, PluginTransformQueryArgs, PluginTransformResultArgs, QueryResult, RootOperationNode, UnknownRow } from 'kysely';
import { Outbox, type LogEntry } from '../../src/pool/outbox.js';
import { startTestApp } from '../support/app.js';
import { describeEachDialect } from '../support/db.js';

const entry = (i: number): LogEntry => ({
  ts: new Date(Date.UTC(2026, 10, 27, 12, 0, i % 60)).toISOString(),
  token_id: 1,
  key_id: null,
  endpoint: 'search',
  status: 200,
  attempts: 1,
  latency_ms: 1.5,
  credits: 1,
  request_id: `req-${i}`,
  error: null,
});

/** Fails inserts into request_logs while `failing` is set. */
class FailingLogs implements KyselyPlugin {
  failing = true;
  transformQuery({ node }: PluginTransformQueryArgs): RootOperationNode {
    if (this.failing && node.kind === 'RawNode' && node.sqlFragments.join('?').includes('insert into request_logs')) throw new Error('disk full');
    return node;
  }
  async transformResult({ result }: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return result;
  }
}

describeEachDialect('write-behind request log', (dialect) => {
  test('N records → N rows, one transaction per flush, flushed at 1,000 rows without waiting for the timer', async () => {
    const t = await startTestApp(dialect);
    try {
      const wb = new Outbox({ db: t.ctx.parts.database.db, dialect: t.ctx.parts.database.dialect, log: t.ctx.log, intervalMs: 60_000, maxBatch: 1000 });
      const before = { ...t.ctx.parts.database.stats };
      for (let i = 0; i < 2500; i++) wb.record(entry(i));
      // Two size-triggered flushes are under way or done; the rest waits for the timer or a flush.
      await wb.flush();
      const rows = await t.ctx.parts.database.db.selectFrom('request_logs').select('request_id').execute();
      assert.equal(rows.length, 2500);
      assert.deepEqual(new Set(rows.map((r) => r.request_id)).size, 2500);
      const tx = t.ctx.parts.database.stats.transactions - before.transactions;
      assert.equal(tx, wb.stats.flushes);
      assert.ok(wb.stats.flushes >= 2 && wb.stats.flushes <= 3, `flushes: ${wb.stats.flushes}`);
      assert.equal(wb.stats.rows, 2500);
    } finally {
      await t.close();
    }
  });

  test('a failed flush is re-queued and written later, in order; close() flushes the rest', async () => {
    const t = await startTestApp(dialect);
    try {
      const plugin = new FailingLogs();
      const wb = new Outbox({ db: t.ctx.parts.database.db.withPlugin(plugin), dialect: t.ctx.parts.database.dialect, log: t.ctx.log, intervalMs: 60_000 });
      for (let i = 0; i < 10; i++) wb.record(entry(i));
      await wb.flush();
      assert.equal(wb.stats.failures, 1);
      assert.equal(wb.pendingRows, 10, 'nothing lost');
      for (let i = 10; i < 15; i++) wb.record(entry(i));
      plugin.failing = false;
      await wb.close();
      const rows = await t.ctx.parts.database.db.selectFrom('request_logs').select('request_id').orderBy('id').execute();
      assert.deepEqual(rows.map((r) => r.request_id), Array.from({ length: 15 }, (_, i) => `req-${i}`));
    } finally {
      await t.close();
    }
  });

  test('spend per key and per token is applied atomically, added to what is stored', async () => {
    const t = await startTestApp(dialect);
    try {
      const db = t.ctx.parts.database.db;
      const [key] = await t.ctx.parts.repos.keys.insertMany([{ key_ciphertext: 'x', key_hash: 'h1', key_masked: 'm', status: 'active', created_at: 'now', updated_at: 'now' }]);
      await db.updateTable('tavily_keys').set({ remaining_quota: 100 }).execute();
      const tok = await t.ctx.parts.repos.tokens.create({ name: 'n', token_hash: 'th', token_prefix: 'tp_', monthly_budget: null, rpm_limit: null });
      const wb = new Outbox({ db, dialect: t.ctx.parts.database.dialect, log: t.ctx.log, intervalMs: 60_000 });
      for (let i = 0; i < 7; i++) wb.record(entry(i), { keyId: key!.id, tokenId: tok.id, month: tok.spent_month, credits: 2 });
      await wb.flush();
      // Another writer's deduction meanwhile (another instance) is not lost.
      await db.updateTable('tavily_keys').set((eb) => ({ remaining_quota: eb('remaining_quota', '-', 10) })).execute();
      wb.record(entry(8), { keyId: key!.id, tokenId: tok.id, month: tok.spent_month, credits: 1 });
      await wb.flush();
      const k = await t.ctx.parts.repos.keys.getById(key!.id);
      assert.equal(k!.remaining_quota, 100 - 14 - 10 - 1);
      assert.ok(k!.last_used_at);
      assert.equal((await t.ctx.parts.repos.tokens.getById(tok.id))!.month_spent, 15);
    } finally {
      await t.close();
    }
  });

  test('a row the database refuses is isolated and dropped; the other rows and the spend are written', async () => {
    const t = await startTestApp(dialect);
    try {
      const db = t.ctx.parts.database.db;
      const [key] = await t.ctx.parts.repos.keys.insertMany([{ key_ciphertext: 'x', key_hash: 'h1', key_masked: 'm', status: 'active', created_at: 'now', updated_at: 'now' }]);
      await db.updateTable('tavily_keys').set({ remaining_quota: 100 }).execute();
      const wb = new Outbox({ db, dialect: t.ctx.parts.database.dialect, log: t.ctx.log, intervalMs: 60_000 });
      for (let i = 0; i < 22; i++) {
        // Row 5 breaks a NOT NULL constraint: both databases refuse it for its data.
        const e = i === 5 ? ({ ...entry(i), endpoint: null } as unknown as LogEntry) : entry(i);
        wb.record(e, { keyId: key!.id, tokenId: null, month: '2026-11', credits: 1 });
      }
      await wb.flush();
      const rows = await db.selectFrom('request_logs').select('request_id').orderBy('id').execute();
      assert.deepEqual(rows.map((r) => r.request_id), Array.from({ length: 22 }, (_, i) => `req-${i}`).filter((r) => r !== 'req-5'));
      assert.equal((await t.ctx.parts.repos.keys.getById(key!.id))!.remaining_quota, 100 - 22, 'the spend of every request is kept');
      assert.equal(wb.stats.dropped, 1);
      assert.equal(wb.pendingRows, 0, 'nothing is left to block the queue');
      assert.equal(wb.health.failing, false);
      assert.match(t.logs.text, /refused this request-log data; it was dropped/);
      // Later rows are written as usual.
      wb.record(entry(30));
      await wb.flush();
      assert.equal(await db.selectFrom('request_logs').select('id').execute().then((r) => r.length), 22);
    } finally {
      await t.close();
    }
  });

  test('text from outside with NUL characters and lone surrogates is stored cleaned', async () => {
    const t = await startTestApp(dialect);
    try {
      const db = t.ctx.parts.database.db;
      const wb = new Outbox({ db, dialect: t.ctx.parts.database.dialect, log: t.ctx.log, intervalMs: 60_000 });
      wb.record({ ...entry(1), status: 400, error: 'Query is too long: "a\u0000b\ud800c"', request_id: 'id\u0000x' });
      for (let i = 2; i < 23; i++) wb.record(entry(i));
      await wb.flush();
      const rows = await db.selectFrom('request_logs').select(['error', 'request_id']).orderBy('id').execute();
      assert.equal(rows.length, 22, 'all 22 rows are stored');
      assert.equal(rows[0]!.error, 'Query is too long: "ab\ufffdc"');
      assert.equal(rows[0]!.request_id, 'idx');
      assert.equal(wb.stats.dropped, 0);
    } finally {
      await t.close();
    }
  });

  test('a database that cannot be written: failing is visible, rows wait, close() says how many were not written', async () => {
    const t = await startTestApp(dialect);
    try {
      const plugin = new FailingLogs();
      const wb = new Outbox({ db: t.ctx.parts.database.db.withPlugin(plugin), dialect: t.ctx.parts.database.dialect, log: t.ctx.log, intervalMs: 60_000, maxPendingRows: 50 });
      for (let i = 0; i < 10; i++) wb.record(entry(i));
      await wb.flush();
      const h = wb.health;
      assert.equal(h.failing, true);
      assert.equal(h.pending_rows, 10);
      assert.equal(h.last_error, 'disk full');
      assert.ok(h.failing_since);
      // The queue is bounded while the database stays down: the oldest rows go, counted.
      for (let i = 10; i < 70; i++) wb.record(entry(i));
      assert.equal(wb.pendingRows, 50);
      assert.equal(wb.health.dropped_rows, 20);
      const closed = await wb.close();
      assert.equal(closed.unwritten, 50);
      assert.match(t.logs.text, /could not be written before exit/);
    } finally {
      await t.close();
    }
  });

  test('refusals are counted into one row per token, endpoint and status per window', async () => {
    const t = await startTestApp(dialect);
    try {
      const db = t.ctx.parts.database.db;
      const wb = new Outbox({ db, dialect: t.ctx.parts.database.dialect, log: t.ctx.log, intervalMs: 60_000 });
      for (let i = 0; i < 5000; i++) wb.refusal({ tokenId: 1, endpoint: 'search', status: 429, error: 'This token is limited to 2 requests per minute.' });
      for (let i = 0; i < 3000; i++) wb.refusal({ tokenId: 1, endpoint: 'search', status: 432, error: 'budget' });
      wb.refusal({ tokenId: 2, endpoint: 'extract', status: 432, error: 'budget' });
      await wb.flush();
      const rows = await db.selectFrom('request_logs').select(['token_id', 'endpoint', 'status', 'requests', 'attempts']).orderBy('id').execute();
      assert.deepEqual(rows, [
        { token_id: 1, endpoint: 'search', status: 429, requests: 5000, attempts: 0 },
        { token_id: 1, endpoint: 'search', status: 432, requests: 3000, attempts: 0 },
        { token_id: 2, endpoint: 'extract', status: 432, requests: 1, attempts: 0 },
      ]);
      const stats = await t.ctx.parts.repos.logs.stats('2000-01-01T00:00:00Z', '2100-01-01T00:00:00Z');
      assert.equal(stats.by_day[0]!.requests, 8001, 'stats count the requests a row stands for');
      assert.equal(stats.by_day[0]!.errors, 8001);
    } finally {
      await t.close();
    }
  });
});

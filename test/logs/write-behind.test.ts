import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { KyselyPlugin, PluginTransformQueryArgs, PluginTransformResultArgs, QueryResult, RootOperationNode, UnknownRow } from 'kysely';
import { WriteBehind, type LogEntry } from '../../src/logs/write-behind.js';
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
      const wb = new WriteBehind({ db: t.ctx.database.db, dialect: t.ctx.database.dialect, log: t.ctx.log, intervalMs: 60_000, maxBatch: 1000 });
      const before = { ...t.ctx.database.stats };
      for (let i = 0; i < 2500; i++) wb.record(entry(i));
      // Two size-triggered flushes are under way or done; the rest waits for the timer or a flush.
      await wb.flush();
      const rows = await t.ctx.database.db.selectFrom('request_logs').select('request_id').execute();
      assert.equal(rows.length, 2500);
      assert.deepEqual(new Set(rows.map((r) => r.request_id)).size, 2500);
      const tx = t.ctx.database.stats.transactions - before.transactions;
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
      const wb = new WriteBehind({ db: t.ctx.database.db.withPlugin(plugin), dialect: t.ctx.database.dialect, log: t.ctx.log, intervalMs: 60_000 });
      for (let i = 0; i < 10; i++) wb.record(entry(i));
      await wb.flush();
      assert.equal(wb.stats.failures, 1);
      assert.equal(wb.pendingRows, 10, 'nothing lost');
      for (let i = 10; i < 15; i++) wb.record(entry(i));
      plugin.failing = false;
      await wb.close();
      const rows = await t.ctx.database.db.selectFrom('request_logs').select('request_id').orderBy('id').execute();
      assert.deepEqual(rows.map((r) => r.request_id), Array.from({ length: 15 }, (_, i) => `req-${i}`));
    } finally {
      await t.close();
    }
  });

  test('spend per key and per token is applied atomically, added to what is stored', async () => {
    const t = await startTestApp(dialect);
    try {
      const db = t.ctx.database.db;
      const [key] = await t.ctx.keys.insertMany([{ key_ciphertext: 'x', key_hash: 'h1', key_masked: 'm', status: 'active', created_at: 'now', updated_at: 'now' }]);
      await db.updateTable('tavily_keys').set({ remaining_quota: 100 }).execute();
      const tok = await t.ctx.tokensRepo.create({ name: 'n', token_hash: 'th', token_prefix: 'tp_', monthly_budget: null, rpm_limit: null });
      const wb = new WriteBehind({ db, dialect: t.ctx.database.dialect, log: t.ctx.log, intervalMs: 60_000 });
      for (let i = 0; i < 7; i++) wb.record(entry(i), { keyId: key!.id, tokenId: tok.id, month: tok.spent_month, credits: 2 });
      await wb.flush();
      // Another writer's deduction meanwhile (another instance) is not lost.
      await db.updateTable('tavily_keys').set((eb) => ({ remaining_quota: eb('remaining_quota', '-', 10) })).execute();
      wb.record(entry(8), { keyId: key!.id, tokenId: tok.id, month: tok.spent_month, credits: 1 });
      await wb.flush();
      const k = await t.ctx.keys.getById(key!.id);
      assert.equal(k!.remaining_quota, 100 - 14 - 10 - 1);
      assert.ok(k!.last_used_at);
      assert.equal((await t.ctx.tokensRepo.getById(tok.id))!.month_spent, 15);
    } finally {
      await t.close();
    }
  });
});

/**
 * The admin services called directly, as the routes call them: each change is one transaction
 * with its audit row, a refused change leaves nothing behind, and the pool takes a committed
 * change at once.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApiError } from '../../src/http/api-error.js';
import { startTestApp } from '../support/app.js';
import { describeEachDialect } from '../support/db.js';

const admin = { remote_addr: '192.0.2.7', user_agent: 'services-test' };

describeEachDialect('the admin services', (dialect) => {
  test('keys and accounts: one transaction with its audit row; a missing key makes nothing; the pool sees the change at once', async () => {
    const t = await startTestApp(dialect);
    try {
      const { keys, accounts, logs } = t.ctx.services;
      const added = await keys.add(admin, { inputs: ['tvly-dev-service00001', 'tvly-dev-service00002', 'not a key'], label: 'svc', validate: false });
      assert.equal(added.added, 2);
      assert.equal(added.rejected_count, 1);
      const [a, b] = added.addedIds;
      assert.equal(t.ctx.parts.pool.size, 2, 'the pool took the new keys');

      // An unknown key: 404, and neither the account nor its audit row exists.
      await assert.rejects(accounts.create(admin, 'team', [a!, 999_999]), (err) => err instanceof ApiError && err.statusCode === 404 && /999999/.test(err.message));
      assert.equal((await accounts.list({ limit: 10 })).total, 0);

      const made = await accounts.create(admin, ' team ', [a!, b!]);
      assert.equal(made.name, 'team');
      assert.deepEqual(made.key_list.map((k) => k.id).sort(), [a, b].sort());
      assert.equal(t.ctx.parts.pool.get(a!)!.account?.id, made.id, 'the pool knows the account');

      const bulk = await keys.bulk(admin, { action: 'disable', ids: [b!, 424242] });
      assert.deepEqual(bulk, { action: 'disable', affected: 1, not_found: [424242] });
      assert.equal(t.ctx.parts.pool.get(b!)!.enabled, false);

      const audit = await logs.audit({ limit: 10 });
      assert.deepEqual(
        audit.items.map((r) => r.action),
        ['keys.bulk', 'accounts.create', 'keys.add'],
        'one row per change that committed, none for the refused one',
      );
      assert.ok(audit.items.every((r) => r.remote_addr === admin.remote_addr && r.user_agent === admin.user_agent));
    } finally {
      await t.close();
    }
  });

  test('tokens: made once with the secret, changed, revoked; a revoked token cannot change', async () => {
    const t = await startTestApp(dialect);
    try {
      const { tokens } = t.ctx.services;
      const { token, item } = await tokens.create(admin, { name: 'agent', monthly_budget: 100 });
      assert.match(token, /^tp_/);
      assert.ok(t.ctx.parts.tokens.authenticate(token), 'the gateway knows the token at once');
      assert.equal((await tokens.update(admin, item.id, { rpm_limit: 5 })).rpm_limit, 5);
      await assert.rejects(tokens.update(admin, item.id, { networks: ['10.0.0.0/33'] }), /networks\[0\].*prefix length/);
      await tokens.revoke(admin, item.id);
      assert.equal(t.ctx.parts.tokens.authenticate(token), null, 'revoked at once');
      await assert.rejects(tokens.update(admin, item.id, { name: 'x' }), (err) => err instanceof ApiError && err.statusCode === 409);
    } finally {
      await t.close();
    }
  });
});

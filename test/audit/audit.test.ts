import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sql } from 'kysely';
import { type TestApp, fakeUpstream } from '../support/app.js';
import { describeEachDialect } from '../support/db.js';

type Method = 'POST' | 'PATCH' | 'PUT' | 'DELETE' | 'GET';

async function auditRows(t: TestApp) {
  return t.ctx.parts.database.db.selectFrom('audit_log').selectAll().orderBy('id').execute();
}

/** Every text the database holds, table by table: what a search for a secret must not find. */
async function everyText(t: TestApp): Promise<string> {
  const tables = ['settings', 'tavily_accounts', 'tavily_keys', 'client_tokens', 'request_logs', 'research_tasks', 'alert_sinks', 'alert_events', 'alert_deliveries', 'alert_active', 'audit_log'] as const;
  const parts: string[] = [];
  for (const table of tables) parts.push(JSON.stringify(await t.ctx.parts.database.db.selectFrom(table).selectAll().execute()));
  return parts.join('\n');
}

describeEachDialect('the audit log', (dialect) => {
  const up = fakeUpstream(dialect);

  test('every admin route’s change leaves exactly one row, with who and from where; a refused change leaves none', () =>
    up.withApp({ TRUSTED_PROXIES: '127.0.0.1' }, async (t) => {
      const keys = ['tvly-dev-auditkey000001', 'tvly-dev-auditkey000002', 'tvly-dev-auditkey000003'];
      const headers = { ...t.auth, 'user-agent': 'audit-test/1.0', 'x-forwarded-for': '203.0.113.7' };
      const call = (method: Method, url: string, payload?: unknown) => t.app.inject({ method, url: `/api/v1/admin${url}`, headers, ...(payload !== undefined ? { payload: payload as object } : {}) });
      const ids: Record<string, number> = {};
      const steps: Array<[string, Method, () => string, () => unknown, string, number]> = [
        ['import', 'POST', () => '/tavily-keys', () => ({ keys, label: 'audited' }), 'keys.add', 201],
        ['patch key', 'PATCH', () => `/tavily-keys/${ids.key1}`, () => ({ label: 'renamed' }), 'keys.update', 200],
        ['bulk', 'POST', () => '/tavily-keys/bulk', () => ({ action: 'disable', ids: [ids.key1, ids.key2] }), 'keys.bulk', 200],
        ['refresh', 'POST', () => '/tavily-keys/refresh-quota', () => ({}), 'keys.refresh', 200],
        ['export', 'GET', () => '/tavily-keys/export', () => undefined, 'keys.export', 200],
        ['account', 'POST', () => '/accounts', () => ({ name: 'team@example.com', key_ids: [ids.key1] }), 'accounts.create', 201],
        ['account patch', 'PATCH', () => `/accounts/${ids.account}`, () => ({ name: 'team2@example.com' }), 'accounts.update', 200],
        ['account keys', 'POST', () => `/accounts/${ids.account}/keys`, () => ({ ids: [ids.key2] }), 'accounts.add_keys', 200],
        ['account delete', 'DELETE', () => `/accounts/${ids.account}`, () => undefined, 'accounts.delete', 204],
        ['delete key', 'DELETE', () => `/tavily-keys/${ids.key3}`, () => undefined, 'keys.delete', 204],
        ['token', 'POST', () => '/tokens', () => ({ name: 'agents', monthly_budget: 100 }), 'tokens.create', 201],
        ['token patch', 'PATCH', () => `/tokens/${ids.token}`, () => ({ rpm_limit: 10 }), 'tokens.update', 200],
        ['token revoke', 'DELETE', () => `/tokens/${ids.token}`, () => undefined, 'tokens.revoke', 200],
        ['rules', 'PUT', () => '/alerts/rules', () => ({ active_keys_below: 2 }), 'alerts.rules', 200],
        ['sink', 'POST', () => '/alerts/sinks', () => ({ name: 'ops', kind: 'webhook', url: 'http://127.0.0.1:9/hook' }), 'alerts.sink_create', 201],
        ['sink patch', 'PATCH', () => `/alerts/sinks/${ids.sink}`, () => ({ enabled: false }), 'alerts.sink_update', 200],
        ['sink delete', 'DELETE', () => `/alerts/sinks/${ids.sink}`, () => undefined, 'alerts.sink_delete', 200],
      ];
      const covered = new Set<string>();
      let token = '';
      for (const [name, method, url, payload, action, status] of steps) {
        const before = (await auditRows(t)).length;
        const res = await call(method, url(), payload());
        assert.equal(res.statusCode, status, `${name}: ${res.body}`);
        const rows = await auditRows(t);
        assert.equal(rows.length, before + 1, `${name} leaves exactly one row`);
        const row = rows.at(-1)!;
        assert.equal(row.action, action, name);
        assert.equal(row.outcome, 'ok');
        assert.equal(row.user_agent, 'audit-test/1.0');
        assert.equal(row.remote_addr, '203.0.113.7', 'the address the trusted proxy gave');
        covered.add(`${method} ${url().replace(/\/\d+/g, '/:id')}`);
        if (name === 'import') {
          const items = res.json().items as Array<{ id: number }>;
          [ids.key1, ids.key2, ids.key3] = items.map((i) => i.id) as [number, number, number];
          assert.deepEqual(JSON.parse(row.targets!).added, 3);
        }
        if (name === 'account') ids.account = res.json().id;
        if (name === 'token') {
          ids.token = res.json().item.id;
          token = res.json().token;
        }
        if (name === 'sink') ids.sink = res.json().item.id;
      }

      // Every route that changes something is in the list above (the test of a sink sends, and changes nothing).
      const doc = (await t.app.inject({ method: 'GET', url: '/api/v1/openapi.json' })).json() as { paths: Record<string, Record<string, unknown>> };
      const changing = Object.entries(doc.paths)
        .filter(([p]) => p.startsWith('/api/v1/admin'))
        .flatMap(([p, ops]) => Object.keys(ops).filter((m) => ['post', 'patch', 'put', 'delete'].includes(m)).map((m) => `${m.toUpperCase()} ${p.slice('/api/v1/admin'.length).replace(/\{[^}]+\}/g, ':id')}`))
        .filter((r) => r !== 'POST /alerts/sinks/:id/test');
      for (const r of changing) assert.ok(covered.has(r), `${r} is audited by this test`);

      // Refused changes roll back and leave nothing: an account with an unknown key (made, then
      // undone), a revoked token changed, a sink name taken.
      const before = (await auditRows(t)).length;
      assert.equal((await call('POST', '/accounts', { name: 'ghost@example.com', key_ids: [ids.key2!, 999999] })).statusCode, 404);
      assert.equal((await call('PATCH', `/tokens/${ids.token}`, { name: 'x' })).statusCode, 409);
      await call('POST', '/alerts/sinks', { name: 'taken', kind: 'webhook', url: 'http://127.0.0.1:9/a' });
      assert.equal((await call('POST', '/alerts/sinks', { name: 'taken', kind: 'webhook', url: 'http://127.0.0.1:9/b' })).statusCode, 409);
      const after = await auditRows(t);
      assert.deepEqual(after.slice(before).map((r) => r.action), ['alerts.sink_create'], 'only the change that held');
      assert.equal((await t.ctx.parts.database.db.selectFrom('tavily_accounts').select('id').where('name', '=', 'ghost@example.com').execute()).length, 0);

      // No key and no token anywhere in the database, the audit log included.
      const text = await everyText(t);
      for (const k of keys) assert.ok(!text.includes(k), `${k} is nowhere in the database`);
      assert.ok(token.startsWith('tp_') && !text.includes(token), 'the token is nowhere in the database');
    }));

  test('a rolled-back transaction leaves no audit row', () =>
    up.withApp({}, async (t) => {
      // The change itself fails in the database after the audit row was written: both go.
      const db = t.ctx.parts.database.db;
      if (t.ctx.parts.database.dialect === 'postgres') {
        await sql`create function no_tokens() returns trigger language plpgsql as $$ begin raise exception 'refused by a test'; end $$`.execute(db);
        await sql`create trigger no_tokens after insert on audit_log for each row execute function no_tokens()`.execute(db);
      } else {
        await sql`create trigger no_tokens after insert on audit_log begin select raise(abort, 'refused by a test'); end`.execute(db);
      }
      const res = await t.app.inject({ method: 'POST', url: '/api/v1/admin/tokens', headers: t.auth, payload: { name: 'never' } });
      assert.ok(res.statusCode >= 500, res.body);
      assert.equal((await db.selectFrom('client_tokens').select('id').execute()).length, 0, 'the token was not made');
      assert.equal((await db.selectFrom('audit_log').select('id').execute()).length, 0);
    }));

  test('refused credentials are counted per address and written in bounded form', () =>
    up.withApp({ TRUSTED_PROXIES: '127.0.0.1' }, async (t) => {
      for (let i = 0; i < 50; i++) {
        const r = await t.app.inject({ method: 'GET', url: '/api/v1/admin/summary', headers: { authorization: `Bearer wrong-token-${i}-0123456789`, 'x-forwarded-for': '198.51.100.4' } });
        assert.equal(r.statusCode, 401);
      }
      for (let i = 0; i < 30; i++) {
        const r = await t.app.inject({ method: 'POST', url: '/search', headers: { authorization: `Bearer tp_unknown${i}`, 'x-forwarded-for': '198.51.100.9' }, payload: { query: 'q' } });
        assert.equal(r.statusCode, 401);
      }
      assert.equal((await auditRows(t)).length, 0, 'nothing written per attempt');
      await t.ctx.audit.flush();
      const rows = await auditRows(t);
      assert.deepEqual(
        rows.map((r) => [r.action, r.outcome, r.remote_addr, JSON.parse(r.targets!).attempts]).sort(),
        [
          ['admin.signin_failed', 'refused', '198.51.100.4', 50],
          ['gateway.unknown_token', 'refused', '198.51.100.9', 30],
        ],
      );
      const text = await everyText(t);
      assert.ok(!text.includes('wrong-token-') && !text.includes('tp_unknown'), 'the presented tokens are not kept');

      const api = await t.app.inject({ method: 'GET', url: '/api/v1/admin/audit?action=admin', headers: t.auth });
      assert.equal(api.statusCode, 200, api.body);
      assert.deepEqual(api.json().items.map((r: { action: string }) => r.action), ['admin.signin_failed']);
      const page = await t.app.inject({ method: 'GET', url: '/api/v1/admin/audit?limit=1', headers: t.auth });
      const next = page.json().next as number;
      const rest = await t.app.inject({ method: 'GET', url: `/api/v1/admin/audit?limit=5&before=${next}`, headers: t.auth });
      assert.equal(page.json().items.length + rest.json().items.length, 2);
      assert.equal((await t.app.inject({ method: 'GET', url: '/api/v1/admin/audit?action=DROP%20TABLE', headers: t.auth })).statusCode, 400);
    }));
});

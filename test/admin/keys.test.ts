import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { type TestApp, startTestApp } from '../support/app.js';
import { describeEachDialect } from '../support/db.js';
import { FakeTavily, defaultUsage } from '../support/fake-tavily.js';

const K = (tag: string, n = 0) => `tvly-dev-${tag}${String(n).padStart(8, '0')}`;

interface KeyJson {
  id: number;
  label: string | null;
  key_masked: string;
  status: string;
  remaining_quota: number | null;
  [k: string]: unknown;
}

describeEachDialect('admin API', (dialect) => {
  let fake: FakeTavily;
  let t: TestApp;
  before(async () => {
    fake = await FakeTavily.start();
    t = await startTestApp(dialect, { tavilyBaseUrl: fake.url, env: { IMPORT_BODY_LIMIT_BYTES: String(4 * 1024 * 1024) } });
  });
  after(async () => {
    await t.close();
    await fake.close();
  });

  const call = (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: unknown, headers: Record<string, string> = {}) =>
    t.app.inject({
      method,
      url: `/api/v1/admin${url}`,
      headers: { ...t.auth, ...headers },
      ...(payload === undefined ? {} : { payload: payload as string }),
    });

  const expectError = (res: { statusCode: number; json(): unknown }, status: number, code: string, message?: RegExp) => {
    assert.equal(res.statusCode, status, JSON.stringify(res.json()));
    const body = res.json() as { error: { code: string; message: string } };
    assert.equal(body.error.code, code);
    assert.equal(typeof body.error.message, 'string');
    if (message) assert.match(body.error.message, message);
  };

  const count = async () => (await call('GET', '/summary')).json().keys.total as number;

  describe('auth', () => {
    test('no token, a wrong token or another scheme: 401 in the admin envelope', async () => {
      for (const authorization of [undefined, 'Bearer wrong-token-value', `Basic ${Buffer.from('a:b').toString('base64')}`, 'Bearer']) {
        const res = await t.app.inject({
          method: 'GET',
          url: '/api/v1/admin/tavily-keys',
          headers: authorization ? { authorization } : {},
        });
        expectError(res, 401, 'unauthorized', /ADMIN_TOKEN/);
        assert.match(String(res.headers['www-authenticate']), /^Bearer/);
      }
    });

    test('unknown admin routes: 401 without the token, 404 with it', async () => {
      const anon = await t.app.inject({ method: 'GET', url: '/api/v1/admin/nope' });
      assert.equal(anon.statusCode, 401);
      expectError(await call('GET', '/nope'), 404, 'not_found', /GET \/api\/v1\/admin\/nope/);
    });

    test('health and readiness need no token', async () => {
      assert.deepEqual((await t.app.inject({ method: 'GET', url: '/healthz' })).json(), { status: 'ok' });
      const ready = (await t.app.inject({ method: 'GET', url: '/readyz' })).json();
      // On PostgreSQL it also says whether the instance hears the others' changes.
      const requestLog = { failing: false, failing_since: null, consecutive_failures: 0, last_error: null, pending_rows: 0, dropped_rows: 0 };
      assert.deepEqual(
        ready,
        dialect.name === 'postgres' ? { status: 'ok', request_log: requestLog, instance: t.ctx.parts.bus!.instanceId, sync: 'listening' } : { status: 'ok', request_log: requestLog },
      );
    });
  });

  describe('import', () => {
    test('JSON: adds, de-duplicates within the request and against the pool, rejects with reasons', async () => {
      const keys = [K('imp', 1), K('imp', 2), K('imp', 1), 'sk-not-tavily-123456', 'tvly-x', 'tvly-dev-has space here', ''];
      const res = await call('POST', '/tavily-keys', { keys, label: 'team A' });
      assert.equal(res.statusCode, 201, res.body);
      const body = res.json();
      assert.equal(body.added, 2);
      assert.equal(body.duplicates, 1);
      assert.equal(body.rejected_count, 4);
      assert.deepEqual(
        body.rejected.map((r: { reason: string }) => r.reason),
        [
          'not a Tavily key: keys start with "tvly-"',
          'too short to be a Tavily key',
          'not a Tavily key: only letters, digits, "-" and "_" may follow "tvly-"',
          'empty',
        ],
      );
      assert.ok(!res.body.includes('sk-not-tavily-123456'), 'rejected input is masked');
      assert.deepEqual(
        body.items.map((i: KeyJson) => [i.key_masked, i.label, i.status, i.remaining_quota]),
        [
          [`tvly-dev-…${K('imp', 1).slice(-4)}`, 'team A', 'active', null],
          [`tvly-dev-…${K('imp', 2).slice(-4)}`, 'team A', 'active', null],
        ],
      );
      assert.ok(!res.body.includes(K('imp', 1)), 'the key text never comes back');

      const again = (await call('POST', '/tavily-keys', { keys: [K('imp', 2), K('imp', 3)] })).json();
      assert.equal(again.added, 1);
      assert.equal(again.duplicates, 1);
    });

    test('text/plain and text/csv: every tvly- token in the text', async () => {
      const text = `name,key\nalpha,${K('txt', 1)}\n# comment ${K('txt', 2)} trailing\n${K('txt', 1)}\ntvly-short`;
      const res = await call('POST', '/tavily-keys?label=from-file', text, { 'content-type': 'text/plain' });
      assert.equal(res.statusCode, 201, res.body);
      const body = res.json();
      assert.equal(body.added, 2);
      assert.equal(body.duplicates, 1);
      assert.equal(body.rejected[0].reason, 'too short to be a Tavily key');
      // A row's name (the CSV's `name` column) is its label; a key with none takes the query's.
      assert.deepEqual(
        (body.items as KeyJson[]).map((i) => i.label),
        ['alpha', 'from-file'],
      );
      // Which inputs were duplicates, masked, and why.
      assert.deepEqual(body.duplicate_inputs, [{ input: body.items[0].key_masked, reason: 'repeated in this import' }]);

      const csv = await call('POST', '/tavily-keys', `k\n${K('csv', 1)}\n`, { 'content-type': 'text/csv' });
      assert.equal(csv.json().added, 1);

      // Header-less `name,key` rows, and keys already in the pool.
      const named = await call('POST', '/tavily-keys', `work laptop,${K('nam', 1)}\n${K('nam', 2)};ci runner\n${K('txt', 1)}\n`, { 'content-type': 'text/plain' });
      assert.equal(named.statusCode, 201, named.body);
      assert.deepEqual((named.json().items as KeyJson[]).map((i) => i.label), ['work laptop', 'ci runner']);
      assert.deepEqual(named.json().duplicate_inputs.map((d: { reason: string }) => d.reason), ['already in the pool']);

      // JSON: a label per key, or the body's for the rest.
      const json = await call('POST', '/tavily-keys', { keys: [{ key: K('jsl', 1), label: 'own' }, K('jsl', 2)], label: 'shared' });
      assert.equal(json.statusCode, 201, json.body);
      assert.deepEqual((json.json().items as KeyJson[]).map((i) => i.label), ['own', 'shared']);

      expectError(await call('POST', '/tavily-keys', 'nothing to see here', { 'content-type': 'text/plain' }), 400, 'no_keys');
    });

    test('validate=true checks only new keys against /usage and stores their figures', async () => {
      const existing = K('imp', 1);
      const good = K('val', 1);
      const bad = 'tvly-dev-invalid-val0001';
      fake.resetStats();
      const res = await call('POST', '/tavily-keys?validate=true', { keys: [existing, good, bad] });
      assert.equal(res.statusCode, 201, res.body);
      const body = res.json();
      assert.equal(body.added, 2);
      assert.equal(body.duplicates, 1);
      assert.equal(fake.stats.callsByKey.get(existing), undefined, 'a key already in the pool is not checked again');
      const [g, b] = body.items as KeyJson[];
      assert.equal(g!.status, 'active');
      assert.equal(g!.remaining_quota, 1000 - defaultUsage(good).key.usage);
      assert.equal(g!.plan, 'Researcher');
      assert.ok(g!.last_refreshed_at);
      assert.equal(b!.status, 'invalid');
      assert.match(String(b!.last_error), /401/);
    });

    test('100,000 keys in one request, one transaction', async () => {
      const keys = Array.from({ length: 100_000 }, (_, i) => K('bulk', i));
      const before = { ...t.ctx.parts.database.stats };
      const total = await count();
      const res = await call('POST', '/tavily-keys', { keys });
      assert.equal(res.statusCode, 201);
      const body = res.json();
      assert.equal(body.added, 100_000);
      assert.equal(body.items.length, 1000);
      assert.equal(body.items_truncated, true);
      assert.equal(t.ctx.parts.database.stats.transactions - before.transactions, 1);
      assert.equal(await count(), total + 100_000);
    });
  });

  describe('bad input never writes and always names the problem', () => {
    const cases: [string, () => Promise<{ statusCode: number; json(): unknown }>, number, string, RegExp][] = [
      ['malformed JSON', () => call('POST', '/tavily-keys', '{"keys": [', { 'content-type': 'application/json' }), 400, 'invalid_json', /JSON/],
      ['keys of the wrong type', () => call('POST', '/tavily-keys', { keys: 'tvly-dev-abcdefgh0001' }), 400, 'invalid_request', /body\.keys must be array/],
      ['a key of the wrong type', () => call('POST', '/tavily-keys', { keys: [K('ok', 1), 42] }), 400, 'invalid_request', /body\.keys\[1\] must be string/],
      ['keys missing', () => call('POST', '/tavily-keys', { label: 'x' }), 400, 'invalid_request', /missing the field "keys"/],
      ['no keys', () => call('POST', '/tavily-keys', { keys: [] }), 400, 'invalid_request', /body\.keys must not be empty/],
      ['an unknown field', () => call('POST', '/tavily-keys', { keys: [K('ok', 2)], lable: 'typo' }), 400, 'invalid_request', /unknown field "lable"/],
      ['a JSON array body', () => call('POST', '/tavily-keys', [K('ok', 3)]), 400, 'invalid_request', /body must be object/],
      ['an unsupported content type', () => call('POST', '/tavily-keys', '<keys/>', { 'content-type': 'application/xml' }), 415, 'unsupported_media_type', /Content-Type/],
      ['a body over the limit', () => call('POST', '/tavily-keys', `{"keys":["${'a'.repeat(5 * 1024 * 1024)}"]}`, { 'content-type': 'application/json' }), 413, 'payload_too_large', /too large/],
      ['too many keys', () => call('POST', '/tavily-keys', `{"keys":[${'"a",'.repeat(100_000)}"a"]}`, { 'content-type': 'application/json' }), 413, 'too_many_keys', /more than 100,000 keys in one import: nothing was added/],
      ['too many keys as text', () => call('POST', '/tavily-keys', Array.from({ length: 100_001 }, (_, i) => `tvly-dev-cap${i}`).join('\n'), { 'content-type': 'text/plain' }), 413, 'too_many_keys', /more than 100,000 keys/],
      ['a refresh with ids of the wrong type', () => call('POST', '/tavily-keys/refresh-quota', { ids: ['1'] }), 400, 'invalid_request', /body\.ids\[0\] must be integer/],
      ['a negative stale_after_s', () => call('POST', '/tavily-keys/refresh-quota', { stale_after_s: -1 }), 400, 'invalid_request', /stale_after_s must be >= 0/],
      ['an unknown bulk action', () => call('POST', '/tavily-keys/bulk', { action: 'explode', ids: [1] }), 400, 'invalid_request', /body\.action/],
    ];
    for (const [name, send, status, code, message] of cases) {
      test(name, async () => {
        const total = await count();
        expectError(await send(), status, code, message);
        assert.equal(await count(), total);
      });
    }
  });

  describe('list, get, patch, delete, bulk, export', () => {
    let ids: number[] = [];
    const keys = Array.from({ length: 10 }, (_, i) => K('lst', i));
    before(async () => {
      await t.ctx.parts.database.db.deleteFrom('tavily_keys').execute();
      const res = await call('POST', '/tavily-keys', { keys: [...keys.slice(0, 5)], label: 'Alpha' });
      const res2 = await call('POST', '/tavily-keys', { keys: [...keys.slice(5), 'tvly-dev-invalid-lst0001', 'tvly-dev-spent-lst00001'], label: 'beta' });
      ids = [...res.json().items, ...res2.json().items].map((i: KeyJson) => i.id);
      const r = await call('POST', '/tavily-keys/refresh-quota');
      assert.equal(r.statusCode, 200);
    });

    test('filters by status, searches label and last characters, counts the total', async () => {
      const inv = (await call('GET', '/tavily-keys?status=invalid')).json();
      assert.equal(inv.total, 1);
      assert.equal(inv.items[0].status, 'invalid');
      assert.equal((await call('GET', '/tavily-keys?status=exhausted')).json().total, 1);
      assert.equal((await call('GET', '/tavily-keys?status=active')).json().total, 10);
      const alpha = (await call('GET', '/tavily-keys?q=ALPHA')).json();
      assert.equal(alpha.total, 5);
      const last4 = (await call('GET', `/tavily-keys?q=${keys[7]!.slice(-4)}`)).json();
      assert.deepEqual(last4.items.map((i: KeyJson) => i.id), [ids[7]]);
      assert.equal((await call('GET', '/tavily-keys?q=%25')).json().total, 0, 'LIKE wildcards are literal');
    });

    test('sorts by remaining quota and pages with a cursor, every key exactly once', async () => {
      const seen: KeyJson[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const res = await call('GET', `/tavily-keys?sort=remaining_quota&order=desc&limit=3${cursor ? `&cursor=${cursor}` : ''}`);
        assert.equal(res.statusCode, 200, res.body);
        const body = res.json();
        assert.equal(body.total, 12);
        seen.push(...body.items);
        cursor = body.next_cursor;
        pages++;
      } while (cursor);
      assert.equal(pages, 4);
      assert.deepEqual(new Set(seen.map((k) => k.id)).size, 12);
      const rem = seen.map((k) => k.remaining_quota ?? -1);
      assert.deepEqual(rem, [...rem].sort((a, b) => b - a));
      const expectedTop = Math.max(...keys.map((k) => 1000 - defaultUsage(k).key.usage));
      assert.equal(seen[0]!.remaining_quota, expectedTop);

      const asc = (await call('GET', '/tavily-keys?sort=created_at&order=asc&limit=1000')).json();
      assert.deepEqual(asc.items.map((k: KeyJson) => k.id), [...ids].sort((a, b) => a - b));
    });

    test('bad list parameters', async () => {
      expectError(await call('GET', '/tavily-keys?limit=1001'), 400, 'invalid_request', /querystring\.limit must be <= 1000/);
      expectError(await call('GET', '/tavily-keys?status=sleepy'), 400, 'invalid_request', /querystring\.status/);
      expectError(await call('GET', '/tavily-keys?cursor=garbage'), 400, 'invalid_cursor');
      const c = (await call('GET', '/tavily-keys?limit=1&sort=created_at')).json().next_cursor;
      expectError(await call('GET', `/tavily-keys?limit=1&sort=remaining_quota&cursor=${c}`), 400, 'invalid_cursor', /sort=created_at/);
    });

    test('get one key, with its per-endpoint usage', async () => {
      const res = await call('GET', `/tavily-keys/${ids[0]}`);
      assert.equal(res.statusCode, 200);
      const k = res.json();
      assert.equal(k.key_masked, `tvly-dev-…${keys[0]!.slice(-4)}`);
      assert.equal(k.endpoint_usage.key.search_usage, defaultUsage(keys[0]!).key.search_usage);
      assert.equal(k.key_ciphertext, undefined);
      assert.equal(k.key_hash, undefined);
      expectError(await call('GET', '/tavily-keys/999999'), 404, 'key_not_found', /999999/);
      expectError(await call('GET', '/tavily-keys/abc'), 400, 'invalid_request', /params\.id must be integer/);
      expectError(await call('GET', '/tavily-keys/0'), 400, 'invalid_request', /params\.id/);
    });

    test('patch label and enabled; wrong types are not coerced', async () => {
      const id = ids[1];
      const res = await call('PATCH', `/tavily-keys/${id}`, { label: 'renamed', enabled: false });
      assert.equal(res.statusCode, 200);
      assert.equal(res.json().label, 'renamed');
      assert.equal(res.json().status, 'disabled');
      assert.equal((await call('PATCH', `/tavily-keys/${id}`, { label: null, enabled: true })).json().label, null);
      assert.equal((await call('GET', `/tavily-keys/${id}`)).json().status, 'active');
      expectError(await call('PATCH', `/tavily-keys/${id}`, { enabled: 'false' }), 400, 'invalid_request', /body\.enabled must be boolean/);
      expectError(await call('PATCH', `/tavily-keys/${id}`, {}), 400, 'invalid_request', /at least 1/);
      expectError(await call('PATCH', '/tavily-keys/999999', { label: 'x' }), 404, 'key_not_found');
      expectError(await call('PATCH', `/tavily-keys/${id}`, { label: 'x'.repeat(201) }), 400, 'invalid_request', /body\.label/);
    });

    test('bulk enable, disable and delete report unknown ids', async () => {
      const res = await call('POST', '/tavily-keys/bulk', { action: 'disable', ids: [ids[2], ids[3], 999999, ids[2]] });
      assert.equal(res.statusCode, 200);
      assert.deepEqual(res.json(), { action: 'disable', affected: 2, not_found: [999999] });
      assert.equal((await call('GET', '/tavily-keys?status=disabled')).json().total, 2);
      assert.equal((await call('POST', '/tavily-keys/bulk', { action: 'enable', ids: [ids[2], ids[3]] })).json().affected, 2);
      assert.equal((await call('GET', '/tavily-keys?status=disabled')).json().total, 0);
    });

    test('export gives every key in full, text/plain, one a line', async () => {
      const res = await call('GET', '/tavily-keys/export');
      assert.equal(res.statusCode, 200);
      assert.match(String(res.headers['content-type']), /^text\/plain/);
      const lines = res.body.trim().split('\n');
      assert.equal(lines.length, 12);
      for (const k of keys) assert.ok(lines.includes(k), k);
      const invalid = await call('GET', '/tavily-keys/export?status=invalid');
      assert.equal(invalid.body, 'tvly-dev-invalid-lst0001\n');
    });

    test('summary counts keys by status and credits left', async () => {
      const s = (await call('GET', '/summary')).json();
      assert.equal(s.keys.total, 12);
      assert.deepEqual(s.keys.by_status, { active: 10, disabled: 0, invalid: 1, exhausted: 1 });
      const expected = keys.reduce((sum, k) => sum + 1000 - defaultUsage(k).key.usage, 0);
      assert.equal(s.total_remaining, expected);
      assert.equal(s.unknown_quota, 0);
      assert.equal(s.refresh.running, false);
      assert.equal(s.refresh.last.total, 12);
    });

    test('delete one key; then it is gone', async () => {
      const res = await call('DELETE', `/tavily-keys/${ids[9]}`);
      assert.equal(res.statusCode, 204);
      assert.equal(res.body, '');
      expectError(await call('GET', `/tavily-keys/${ids[9]}`), 404, 'key_not_found');
      expectError(await call('DELETE', `/tavily-keys/${ids[9]}`), 404, 'key_not_found');
    });

    test('keys are encrypted at rest: the database holds no key text', async () => {
      let stored: string;
      if (t.ctx.parts.database.dialect === 'sqlite' && t.db.config.kind === 'sqlite') {
        const file = t.db.config.file;
        stored = [file, `${file}-wal`].filter((f) => fs.existsSync(f)).map((f) => fs.readFileSync(f).toString('latin1')).join('');
      } else {
        const c = new pg.Client({ connectionString: (t.db.config as { url: string }).url, options: `-c search_path=${t.db.open.pgSearchPath}` });
        await c.connect();
        const r = await c.query('select * from tavily_keys');
        await c.end();
        stored = JSON.stringify(r.rows);
      }
      assert.ok(stored.includes('Alpha'), 'the check reads the stored rows');
      for (const k of keys.slice(0, 9)) {
        assert.ok(!stored.includes(k), `${k} is not stored in the clear`);
        assert.ok(!stored.includes(k.slice('tvly-dev-'.length)), 'not even without its prefix');
      }
    });

    test('no key text in the logs', () => {
      assert.ok(t.logs.lines.length > 10, 'the app logged');
      for (const k of keys) assert.ok(!t.logs.text.includes(k), k);
      assert.ok(!t.logs.text.includes('test-admin-token'), 'nor the admin token');
    });
  });

  test('OpenAPI document lists the admin routes', async () => {
    const doc = (await t.app.inject({ method: 'GET', url: '/api/v1/openapi.json' })).json();
    for (const p of ['/api/v1/admin/tavily-keys', '/api/v1/admin/tavily-keys/{id}', '/api/v1/admin/tavily-keys/refresh-quota', '/api/v1/admin/summary']) {
      assert.ok(doc.paths[p], p);
    }
    assert.ok(doc.paths['/api/v1/admin/tavily-keys'].post.requestBody.content['text/plain']);
  });
});

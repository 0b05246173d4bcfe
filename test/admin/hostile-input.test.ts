import assert from 'node:assert/strict';
import { before, after, test } from 'node:test';
import { sql } from 'kysely';
import { type TestApp, startTestApp } from '../support/app.js';
import { describeEachDialect } from '../support/db.js';
import { FakeTavily } from '../support/fake-tavily.js';

/**
 * Hostile input on every route: each answer is a 4xx that names what is wrong (or a success),
 * never a 500, and a refused request changes nothing.
 */

/** Values a hostile client sends in place of the expected ones. */
const HOSTILE: unknown[] = [
  null,
  true,
  -1,
  0,
  1.5,
  1e308,
  -1e308,
  2 ** 53,
  2 ** 63,
  'a\u0000b',
  '\ud800',
  'x'.repeat(100_000),
  '',
  [],
  [1e300],
  ['\u0000'],
  {},
  { nested: { deeper: ['\u0000'] } },
];

/** Query-string text, percent-encoded; an unpaired surrogate goes as the bytes of one (not UTF-8). */
const enc = (v: string) => {
  try {
    return encodeURIComponent(v);
  } catch {
    return '%ED%A0%80';
  }
};

/** The same as query-string text. */
const HOSTILE_TEXT = ['', '-1', '1.5', '1e308', '99999999999999999999', '9223372036854775808', 'a\u0000b', '\ud800', 'x'.repeat(5000), '%00', 'null', '[]'];

interface Route {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  url: string;
  /** A valid body, whose fields are replaced one by one. */
  body?: Record<string, unknown>;
  query?: string[];
}

const ROUTES: Route[] = [
  { method: 'POST', url: '/api/v1/admin/tavily-keys', body: { keys: ['tvly-dev-hostile000001'], label: 'l' }, query: ['validate', 'label'] },
  { method: 'GET', url: '/api/v1/admin/tavily-keys', query: ['status', 'q', 'sort', 'order', 'limit', 'cursor'] },
  { method: 'GET', url: '/api/v1/admin/tavily-keys/export', query: ['status'] },
  { method: 'POST', url: '/api/v1/admin/tavily-keys/refresh-quota', body: { ids: [1], stale_after_s: 60 } },
  { method: 'POST', url: '/api/v1/admin/tavily-keys/bulk', body: { action: 'disable', ids: [999] } },
  { method: 'PATCH', url: '/api/v1/admin/tavily-keys/1', body: { label: 'x', enabled: true } },
  { method: 'POST', url: '/api/v1/admin/tokens', body: { name: 'n', monthly_budget: 10, rpm_limit: 10 } },
  { method: 'GET', url: '/api/v1/admin/tokens', query: ['include_revoked'] },
  { method: 'PATCH', url: '/api/v1/admin/tokens/1', body: { name: 'n', monthly_budget: 10, rpm_limit: 10 } },
  { method: 'GET', url: '/api/v1/admin/logs', query: ['from', 'to', 'token_id', 'key_id', 'endpoint', 'status', 'limit', 'cursor'] },
  { method: 'GET', url: '/api/v1/admin/stats', query: ['from', 'to'] },
];
const ID_ROUTES = ['/api/v1/admin/tavily-keys/', '/api/v1/admin/tokens/'];

describeEachDialect('hostile input', (dialect) => {
  let t: TestApp;
  let fake: FakeTavily;
  let token: string;
  before(async () => {
    fake = await FakeTavily.start();
    t = await startTestApp(dialect, { tavilyBaseUrl: fake.url });
    await t.app.inject({ method: 'POST', url: '/api/v1/admin/tavily-keys', headers: t.auth, payload: { keys: ['tvly-dev-hostilebase0001'] } });
    token = (await t.app.inject({ method: 'POST', url: '/api/v1/admin/tokens', headers: t.auth, payload: { name: 'base' } })).json().token;
  });
  after(async () => {
    await t.close();
    await fake.close();
  });

  /** A fingerprint of what is stored: a refused request must leave it as it was. */
  const snapshot = async () => {
    const db = t.ctx.parts.database.db;
    const keys = await sql<{ n: number; u: string | null; l: string | null }>`select count(*) as n, max(updated_at) as u, max(label) as l from tavily_keys`.execute(db);
    const tokens = await sql<{ n: number; u: string | null }>`select count(*) as n, max(updated_at) as u from client_tokens`.execute(db);
    return JSON.stringify([keys.rows[0], tokens.rows[0]]);
  };

  const send = (method: string, url: string, payload?: unknown, headers: Record<string, string> = t.auth) =>
    t.app.inject({ method: method as 'GET', url, headers, ...(payload === undefined ? {} : { payload: payload as object }) });

  test('every field of every admin route, set to each hostile value: a 4xx or a success, never a 500, never a half-written change', async () => {
    let tried = 0;
    for (const route of ROUTES) {
      for (const field of Object.keys(route.body ?? {})) {
        for (const v of HOSTILE) {
          const before = await snapshot();
          const r = await send(route.method, route.url, { ...route.body, [field]: v });
          tried++;
          assert.ok(r.statusCode < 500, `${route.method} ${route.url} ${field}=${JSON.stringify(v)?.slice(0, 40)} → ${r.statusCode} ${r.body.slice(0, 200)}`);
          if (r.statusCode >= 400) {
            assert.match(r.json().error.message, /\S/, 'the error says what is wrong');
            assert.equal(await snapshot(), before, `${route.method} ${route.url} ${field}: a refused request changed nothing`);
          }
        }
      }
      for (const q of route.query ?? []) {
        for (const v of HOSTILE_TEXT) {
          const before = await snapshot();
          const sep = route.url.includes('?') ? '&' : '?';
          const r = await send(route.method, `${route.url}${sep}${q}=${enc(v)}`, route.body);
          tried++;
          assert.ok(r.statusCode < 500, `${route.method} ${route.url} ?${q}=${v.slice(0, 40)} → ${r.statusCode} ${r.body.slice(0, 200)}`);
          if (r.statusCode >= 400) assert.equal(await snapshot(), before);
        }
      }
    }
    for (const prefix of ID_ROUTES) {
      for (const id of HOSTILE_TEXT) {
        for (const method of ['GET', 'PATCH', 'DELETE']) {
          const r = await send(method, `${prefix}${enc(id)}`, method === 'PATCH' ? { name: 'x', label: 'x' } : undefined);
          tried++;
          assert.ok(r.statusCode >= 400 && r.statusCode < 500, `${method} ${prefix}${id.slice(0, 30)} → ${r.statusCode} ${r.body.slice(0, 200)}`);
        }
      }
    }
    assert.ok(tried > 400, `${tried} hostile requests`);
  });

  test('the gateway routes: hostile bodies and ids get a 4xx or pass through, never a 500', async () => {
    const h = { authorization: `Bearer ${token}` };
    const bodies: [string, string][] = [
      ['/search', 'query'],
      ['/extract', 'urls'],
      ['/crawl', 'url'],
      ['/map', 'url'],
      ['/research', 'input'],
    ];
    for (const [url, field] of bodies) {
      for (const v of HOSTILE) {
        const r = await send('POST', url, { [field]: v }, h);
        assert.ok(r.statusCode < 500, `POST ${url} ${field}=${JSON.stringify(v)?.slice(0, 40)} → ${r.statusCode} ${r.body.slice(0, 200)}`);
        if (r.statusCode >= 400) assert.match(r.json().detail.error, /\S/, 'the error says what is wrong');
      }
    }
    for (const id of HOSTILE_TEXT) {
      const r = await send('GET', `/research/${enc(id)}`, undefined, h);
      assert.ok(r.statusCode >= 400 && r.statusCode < 500, `GET /research/${id.slice(0, 30)} → ${r.statusCode} ${r.body.slice(0, 200)}`);
    }
    await t.ctx.parts.outbox.flush();
    assert.equal(t.ctx.parts.outbox.health.failing, false, 'the request log took every row');
    assert.equal(t.ctx.parts.outbox.stats.dropped, 0);
  });

  test('the values the hostile tester found: a 400 naming the field', async () => {
    const cases: [string, string, unknown, RegExp][] = [
      ['POST', '/api/v1/admin/tavily-keys/refresh-quota', { stale_after_s: 1e308 }, /body\.stale_after_s must be <= 315360000/],
      ['POST', '/api/v1/admin/tokens', { name: 'a\u0000b' }, /body\.name must not contain a NUL character/],
      ['POST', '/api/v1/admin/tokens', { name: 'a\ud800' }, /body\.name must be valid Unicode/],
      ['PATCH', '/api/v1/admin/tavily-keys/1', { label: 'x\u0000' }, /body\.label must not contain a NUL character/],
      ['GET', '/api/v1/admin/tavily-keys?q=a%00b', undefined, /querystring\.q must not contain a NUL character/],
      ['POST', '/api/v1/admin/tavily-keys/bulk', { action: 'delete', ids: [1e300] }, /body\.ids\[0\] must be <= 2147483647/],
      ['POST', '/api/v1/admin/tavily-keys/bulk', { action: 'delete', ids: [2 ** 53] }, /body\.ids\[0\] must be <= 2147483647/],
      ['POST', '/api/v1/admin/tavily-keys/bulk', { action: 'delete', ids: [2 ** 63] }, /body\.ids\[0\] must be <= 2147483647/],
      ['GET', '/api/v1/admin/logs?cursor=99999999999999999999', undefined, /querystring\.cursor must be the next_cursor of a previous page/],
      ['POST', '/api/v1/admin/tokens', { name: 'x', monthly_budget: 1.5 }, /body\.monthly_budget must be integer/],
      ['POST', '/api/v1/admin/tokens', { name: 'x', monthly_budget: 1e308 }, /body\.monthly_budget must be <= 1000000000/],
      ['POST', '/api/v1/admin/tavily-keys?unknown=1', { keys: ['tvly-dev-unknownquery01'] }, /querystring has an unknown field "unknown"/],
    ];
    for (const [method, url, payload, message] of cases) {
      const r = await send(method, url, payload);
      assert.equal(r.statusCode, 400, `${method} ${url} → ${r.body}`);
      assert.match(r.json().error.message, message);
    }
    const text = await t.app.inject({ method: 'POST', url: '/api/v1/admin/tavily-keys?label=a%00b', headers: { ...t.auth, 'content-type': 'text/plain' }, payload: 'tvly-dev-textlabel00001' });
    assert.equal(text.statusCode, 400);
    assert.match(text.json().error.message, /querystring\.label must not contain a NUL character/);
    const poll = await send('GET', '/research/abc%00def', undefined, { authorization: `Bearer ${token}` });
    assert.equal(poll.statusCode, 400);
    assert.match(poll.json().detail.error, /params\.request_id must be a request_id as Tavily returned it/);
    const empty = await send('POST', '/extract', { urls: [] }, { authorization: `Bearer ${token}` });
    assert.equal(empty.statusCode, 400);
    assert.equal(empty.json().detail.error, 'body.urls must not be empty');
  });

  test('PATCH of a revoked token is refused with 409, and changes nothing', async () => {
    const made = await send('POST', '/api/v1/admin/tokens', { name: 'to revoke' });
    const id = made.json().item.id as number;
    await send('DELETE', `/api/v1/admin/tokens/${id}`);
    const before = await snapshot();
    const r = await send('PATCH', `/api/v1/admin/tokens/${id}`, { monthly_budget: 5 });
    assert.equal(r.statusCode, 409, r.body);
    assert.equal(r.json().error.code, 'token_revoked');
    assert.match(r.json().error.message, /was revoked on \d{4}-\d\d-\d\d/);
    assert.equal(await snapshot(), before);
  });

  test('bytes that are not UTF-8 are refused with a 400 at every door, and nothing is stored', async () => {
    const before = await snapshot();
    // "café" in Latin-1: the é is the lone byte 0xE9, which UTF-8 decoding would turn into U+FFFD.
    const latin1 = (json: string) => Buffer.concat([Buffer.from(json.split('é')[0]!), Buffer.from([0xe9]), Buffer.from(json.split('é')[1]!)]);
    const admin = await t.app.inject({ method: 'POST', url: '/api/v1/admin/tokens', headers: { ...t.auth, 'content-type': 'application/json' }, payload: latin1('{"name": "café"}') });
    assert.equal(admin.statusCode, 400, admin.body);
    assert.equal(admin.json().error.code, 'invalid_encoding');
    assert.match(admin.json().error.message, /^the body is not valid UTF-8 text \(a bad byte near offset 1[45]\): send it encoded as UTF-8$/);
    const patch = await t.app.inject({ method: 'PATCH', url: '/api/v1/admin/tavily-keys/1', headers: { ...t.auth, 'content-type': 'application/json' }, payload: latin1('{"label": "café"}') });
    assert.equal(patch.statusCode, 400);
    const asJson = await t.app.inject({ method: 'POST', url: '/api/v1/admin/tavily-keys', headers: { ...t.auth, 'content-type': 'application/json' }, payload: latin1('{"keys": ["tvly-dev-latinkey000001"], "label": "café"}') });
    assert.equal(asJson.statusCode, 400, asJson.body);
    assert.equal(asJson.json().error.code, 'invalid_encoding');
    const asText = await t.app.inject({ method: 'POST', url: '/api/v1/admin/tavily-keys', headers: { ...t.auth, 'content-type': 'text/csv' }, payload: latin1('label,key\ncafé,tvly-dev-latinkey000002\n') });
    assert.equal(asText.statusCode, 400, asText.body);
    assert.equal(asText.json().error.code, 'invalid_encoding');
    assert.equal(await snapshot(), before);

    const gateway = await t.app.inject({ method: 'POST', url: '/search', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, payload: latin1('{"query": "café"}') });
    assert.equal(gateway.statusCode, 400);
    assert.match(gateway.json().detail.error, /^the body is not valid UTF-8 text/);
    const mcp = await t.app.inject({ method: 'POST', url: '/mcp', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, payload: latin1('{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "tavily_search", "arguments": {"query": "café"}}}') });
    assert.equal(mcp.statusCode, 400);
    assert.equal(mcp.json().error.code, -32700);
    assert.match(mcp.json().error.message, /^Parse error: the body is not valid UTF-8 text/);
    // Text that is UTF-8 goes through as it is.
    const fine = await t.app.inject({ method: 'POST', url: '/api/v1/admin/tokens', headers: t.auth, payload: { name: 'café ☕' } });
    assert.equal(fine.statusCode, 201);
    assert.equal(fine.json().item.name, 'café ☕');
  });

  test('revoking a revoked token is a 409 that writes no second audit row', async () => {
    const id = (await send('POST', '/api/v1/admin/tokens', { name: 'revoke twice' })).json().item.id as number;
    const first = await send('DELETE', `/api/v1/admin/tokens/${id}`);
    assert.equal(first.statusCode, 200);
    const revokedAt = first.json().revoked_at as string;
    const before = await snapshot();
    const again = await send('DELETE', `/api/v1/admin/tokens/${id}`);
    assert.equal(again.statusCode, 409, again.body);
    assert.equal(again.json().error.code, 'token_revoked');
    assert.equal(again.json().error.message, `client token ${id} was revoked already, on ${revokedAt}`);
    assert.equal((await send('DELETE', '/api/v1/admin/tokens/987654')).statusCode, 404);
    assert.equal(await snapshot(), before);
    const audit = await t.ctx.parts.database.db.selectFrom('audit_log').select(['action', 'targets']).where('action', '=', 'tokens.revoke').execute();
    assert.equal(audit.filter((a) => (JSON.parse(a.targets ?? '{}') as { id?: number }).id === id).length, 1, JSON.stringify(audit));
  });
});

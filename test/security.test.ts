import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { redactUrl } from '../src/plugins/access-log.js';
import { type TestApp, startTestApp } from './support/app.js';
import { dialects } from './support/db.js';

describe('security headers and what is logged', () => {
  let t: TestApp;
  before(async () => {
    t = await startTestApp(dialects[0]!, { env: { LOG_LEVEL: 'info' } });
  });
  after(async () => {
    await t.close();
  });

  test('the dashboard is sent with a strict CSP, no framing, nosniff and no referrer', async () => {
    const r = await t.app.inject({ method: 'GET', url: '/' });
    assert.equal(r.statusCode, 200);
    const csp = String(r.headers['content-security-policy']);
    for (const d of ["default-src 'self'", "script-src 'self'", "style-src 'self'", "object-src 'none'", "frame-ancestors 'none'", "base-uri 'none'"]) assert.ok(csp.includes(d), `${d} in ${csp}`);
    assert.ok(!csp.includes('unsafe-inline'), 'no inline scripts or styles');
    assert.equal(r.headers['x-frame-options'], 'DENY');
    assert.equal(r.headers['x-content-type-options'], 'nosniff');
    assert.equal(r.headers['referrer-policy'], 'no-referrer');
  });

  test('admin answers, errors included, are never cached', async () => {
    for (const [url, headers, status] of [
      ['/api/v1/admin/summary', t.auth, 200],
      ['/api/v1/admin/summary', {}, 401],
      ['/api/v1/admin/tavily-keys/9', t.auth, 404],
    ] as const) {
      const r = await t.app.inject({ method: 'GET', url, headers });
      assert.equal(r.statusCode, status);
      assert.equal(r.headers['cache-control'], 'no-store', url);
      assert.equal(r.headers['x-content-type-options'], 'nosniff');
    }
  });

  test('credentials in URLs are redacted in the log, on unknown routes too', async () => {
    const before = t.logs.lines.length;
    await t.app.inject({ method: 'GET', url: '/nowhere?api_key=tp_secretvalue123&x=1' });
    await t.app.inject({ method: 'GET', url: '/api/v1/admin/nothing?token=tpa_adminsecret99' });
    await t.app.inject({ method: 'GET', url: '/usage?api_key=tvly-dev-leakedkey0001' });
    await t.app.inject({ method: 'GET', url: '/tvly-dev-inthepath00001/x' });
    const text = t.logs.lines.slice(before).join('');
    assert.match(text, /\/nowhere\?api_key=\[redacted\]&x=1/, 'the unknown route is logged, redacted');
    for (const secret of ['secretvalue123', 'adminsecret99', 'leakedkey0001', 'inthepath00001']) assert.ok(!text.includes(secret), `${secret} is not in the log`);
  });

  test('the dashboard’s reads are logged at debug; admin changes at info', async () => {
    const before = t.logs.lines.length;
    await t.app.inject({ method: 'GET', url: '/api/v1/admin/summary', headers: t.auth });
    await t.app.inject({ method: 'POST', url: '/api/v1/admin/tokens', headers: t.auth, payload: { name: 'logged' } });
    const lines = t.logs.lines.slice(before).map((l) => JSON.parse(l) as { msg: string; req?: { method: string; url: string } });
    const completed = lines.filter((l) => l.msg === 'request completed');
    assert.deepEqual(completed.map((l) => `${l.req!.method} ${l.req!.url}`), ['POST /api/v1/admin/tokens']);
  });

  test('redactUrl', () => {
    assert.equal(redactUrl('/search?api_key=abc&q=1'), '/search?api_key=[redacted]&q=1');
    assert.equal(redactUrl('/x?tavilyApiKey=tvly-dev-abcdef123'), '/x?tavilyApiKey=[redacted]');
    assert.equal(redactUrl('/x?q=tvly-dev-abcdef123'), '/x?q=tvly-[redacted]');
    assert.equal(redactUrl('/healthz'), '/healthz');
  });
});

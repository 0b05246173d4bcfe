import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { type TestApp, fakeUpstream, keysAndToken, startCluster } from '../support/app.js';
import { describeEachDialect } from '../support/db.js';

const METRICS_TOKEN = 'metrics-token-0123456789';

/** `/metrics` read by a real Prometheus text parser: family → the samples' values by their labels. */
async function scrape(t: TestApp, token: string | null = METRICS_TOKEN) {
  const res = await t.app.inject({ method: 'GET', url: '/metrics', headers: token ? { authorization: `Bearer ${token}` } : {} });
  assert.equal(res.statusCode, 200, res.body);
  assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  const families = new Map(parsePrometheusTextFormat(res.body).map((f) => [f.name, f]));
  const value = (name: string, labels: Record<string, string> = {}) => {
    const f = families.get(name);
    assert.ok(f, `no ${name} in /metrics`);
    const m = f.metrics.find((s) => Object.entries(labels).every(([k, v]) => s.labels?.[k] === v));
    return m ? Number(m.value ?? m.count) : 0;
  };
  const sum = (name: string, labels: Record<string, string> = {}) =>
    (families.get(name)?.metrics ?? []).filter((s) => Object.entries(labels).every(([k, v]) => s.labels?.[k] === v)).reduce((n, s) => n + Number(s.value), 0);
  // This parser folds a labelled histogram's series into one: histograms are read back from
  // prom-client's own registry (its JSON round trip), by their _count samples.
  const json = await t.ctx.metrics!.registry.getMetricsAsJSON();
  const observed = (name: string, labels: Record<string, string> = {}) =>
    (json.find((f) => f.name === name)?.values ?? [])
      .filter((v) => (v as { metricName?: string }).metricName === `${name}_count` && Object.entries(labels).every(([k, l]) => v.labels[k] === l))
      .reduce((n, v) => n + v.value, 0);
  return { families, value, sum, observed };
}

describeEachDialect('Prometheus metrics', (dialect) => {
  const up = fakeUpstream(dialect);
  const env = { METRICS_TOKEN, METRICS_TOKEN_LABELS: '1' };

  test('after a known mix of traffic, the counters equal what the fake upstream saw', () =>
    up.withApp(env, async (t) => {
      // An invalid key first in line (it is tried once, then marked), and two good ones.
      const c = await keysAndToken(t, ['tvly-dev-invalid-metrics1', 'tvly-dev-metricsgood001', 'tvly-dev-metricsgood002'], { name: 'agents', monthly_budget: 12 });
      const other = (await t.app.inject({ method: 'POST', url: '/api/v1/admin/tokens', headers: t.auth, payload: { name: 'second' } })).json().token as string;
      await t.ctx.parts.refresher.refresh();
      const send = (url: string, payload: object, tok = c.token) => t.app.inject({ method: 'POST', url, headers: { authorization: `Bearer ${tok}` }, payload });
      // The invalid key is only found by traffic: mark it active again after the refresh.
      const invalidId = c.ids.get('tvly-dev-invalid-metrics1')!;
      t.ctx.parts.pool.refreshed(invalidId, 'active', 5000);
      for (let i = 0; i < 5; i++) assert.equal((await send('/search', { query: `basic ${i}` })).statusCode, 200);
      for (let i = 0; i < 2; i++) assert.equal((await send('/search', { query: `adv ${i}`, search_depth: 'advanced' })).statusCode, 200);
      assert.equal((await send('/extract', { urls: ['https://example.com/a'] })).statusCode, 200);
      // 5 + 4 + 1 = 10 credits of a budget of 12: an advanced search (2) fits, then the budget refuses.
      assert.equal((await send('/search', { query: 'last', search_depth: 'advanced' })).statusCode, 200);
      assert.equal((await send('/search', { query: 'refused' })).statusCode, 432);
      assert.equal((await send('/search', { query: 'by another token' }, other)).statusCode, 200);

      const m = await scrape(t);
      assert.equal(m.value('tavily_pool_requests_total', { endpoint: 'search', door: 'rest', status: '200' }), 9);
      assert.equal(m.value('tavily_pool_requests_total', { endpoint: 'extract', door: 'rest', status: '200' }), 1);
      assert.equal(m.value('tavily_pool_requests_total', { endpoint: 'search', door: 'rest', status: '432' }), 1);
      assert.equal(m.sum('tavily_pool_credits_spent_total'), up.fake.totalCredits, 'credits counted = credits Tavily billed');
      assert.equal(up.fake.totalCredits, 5 + 4 + 1 + 2 + 1);
      assert.equal(m.value('tavily_pool_failovers_total', { reason: 'invalid' }), up.fake.stats.requestsByKey.get('tvly-dev-invalid-metrics1'));
      assert.equal(m.value('tavily_pool_failovers_total', { reason: 'invalid' }), 1);
      assert.equal(m.value('tavily_pool_keys', { state: 'invalid' }), 1);
      assert.equal(m.value('tavily_pool_keys', { state: 'available' }), 2);
      assert.equal(m.value('tavily_pool_credits_remaining'), t.ctx.parts.pool.creditsRemaining());
      assert.equal(m.value('tavily_pool_refresh_runs_total', { result: 'ok' }), 1);
      assert.equal(m.observed('tavily_pool_upstream_seconds', { endpoint: 'search' }), 9, 'a latency per served search');
      assert.equal(m.observed('tavily_pool_upstream_seconds', { endpoint: 'extract' }), 1);
      assert.equal(m.observed('tavily_pool_gateway_added_seconds', { endpoint: 'search' }), 9, 'the time added, per answered search');
      // Token labels are bounded (METRICS_TOKEN_LABELS=1): the second token name seen is "other".
      assert.equal(m.value('tavily_pool_token_requests_total', { token: 'agents' }), 10);
      assert.equal(m.value('tavily_pool_token_requests_total', { token: 'other' }), 1);
      assert.equal(m.value('tavily_pool_token_credits_total', { token: 'agents' }), 12);
      await t.ctx.parts.outbox.flush();
      const after = await scrape(t);
      assert.ok(after.observed('tavily_pool_request_log_flush_seconds') >= 1, 'flushes are timed');
      assert.equal(after.value('tavily_pool_request_log_pending_rows'), 0);
      assert.ok(after.families.has('process_cpu_seconds_total'), 'process metrics too');
    }));

  test('every answer is counted, by status: 35 searches, 5 of them refused by validation (400), one with an unknown token (401), and MCP arguments refused', () =>
    up.withApp(env, async (t) => {
      const c = await keysAndToken(t, ['tvly-dev-metricscount01'], { name: 'agents' });
      const send = (payload: unknown, tok = c.token) => t.app.inject({ method: 'POST', url: '/search', headers: { authorization: `Bearer ${tok}`, 'content-type': 'application/json' }, payload: JSON.stringify(payload) });
      for (let i = 0; i < 30; i++) assert.equal((await send({ query: `fine ${i}` })).statusCode, 200);
      for (const bad of [{}, { query: '' }, { query: 42 }, { urls: 'x' }, { query: null }]) assert.equal((await send(bad)).statusCode, 400, JSON.stringify(bad));
      assert.equal((await send({ query: 'who?' }, 'tp_not-a-token')).statusCode, 401);
      const research = await t.app.inject({ method: 'GET', url: '/research/%20bad', headers: { authorization: `Bearer ${c.token}` } });
      assert.equal(research.statusCode, 400);
      const mcp = await t.app.inject({
        method: 'POST',
        url: '/mcp',
        headers: { authorization: `Bearer ${c.token}`, accept: 'application/json, text/event-stream', 'content-type': 'application/json' },
        payload: { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'tavily_search', arguments: { query: 7 } } },
      });
      assert.match(mcp.body, /Invalid arguments for tavily_search/);

      const m = await scrape(t);
      assert.equal(m.value('tavily_pool_requests_total', { endpoint: 'search', door: 'rest', status: '200' }), 30);
      assert.equal(m.value('tavily_pool_requests_total', { endpoint: 'search', door: 'rest', status: '400' }), 5);
      assert.equal(m.value('tavily_pool_requests_total', { endpoint: 'search', door: 'rest', status: '401' }), 1);
      assert.equal(m.value('tavily_pool_requests_total', { endpoint: 'research.get', door: 'rest', status: '400' }), 1);
      assert.equal(m.value('tavily_pool_requests_total', { endpoint: 'search', door: 'mcp', status: '400' }), 1);
      assert.equal(m.sum('tavily_pool_requests_total', { door: 'rest' }), 37, 'every REST answer, once');
    }));

  test('every series the Grafana dashboard in deploy/ queries is served', () =>
    up.withApp(env, async (t) => {
      const dashboard = JSON.parse(readFileSync('deploy/grafana/tavily-pool.json', 'utf8')) as { panels: Array<{ targets: Array<{ expr: string }> }> };
      const exprs = dashboard.panels.flatMap((p) => p.targets.map((x) => x.expr));
      const names = new Set(exprs.flatMap((e) => [...e.matchAll(/\b((?:tavily_pool|process|nodejs)_[a-z0-9_]+)/g)].map((m) => m[1]!.replace(/_(bucket|count|sum)$/, ''))));
      assert.ok(names.size >= 15, [...names].join(', '));
      // Histograms and labelled counters appear once something is observed: a refresh, a request, a delivery.
      const c = await keysAndToken(t, ['tvly-dev-grafanakey0001']);
      await t.ctx.parts.refresher.refresh();
      await t.app.inject({ method: 'POST', url: '/search', headers: { authorization: `Bearer ${c.token}` }, payload: { query: 'q' } });
      await t.ctx.parts.outbox.flush();
      t.ctx.metrics!.failover('failure');
      t.ctx.metrics!.syncLag(3);
      t.ctx.metrics!.alertDelivery('delivered');
      const m = await scrape(t);
      const json = await t.ctx.metrics!.registry.getMetricsAsJSON();
      const served = new Set([...m.families.keys(), ...json.map((f) => f.name)]);
      for (const n of names) assert.ok(served.has(n), `the dashboard queries ${n}, which /metrics does not serve`);
    }));

  test('METRICS_TOKEN guards /metrics; METRICS_ENABLED=false removes it', async () => {
    await up.withApp(env, async (t) => {
      const none = await t.app.inject({ method: 'GET', url: '/metrics' });
      assert.equal(none.statusCode, 401);
      assert.match(String(none.headers['www-authenticate']), /Bearer/);
      const wrong = await t.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: 'Bearer nope-nope-nope-nope' } });
      assert.equal(wrong.statusCode, 401);
      assert.match(wrong.body, /wrong token/);
      await scrape(t);
    });
    await up.withApp({ METRICS_ENABLED: 'false' }, async (t) => {
      assert.equal(t.ctx.metrics, null);
      assert.equal((await t.app.inject({ method: 'GET', url: '/metrics' })).statusCode, 404);
    });
  });
});

describeEachDialect('Prometheus metrics across instances', (dialect) => {
  if (dialect.name !== 'postgres') {
    test('the change feed’s lag', { skip: 'needs PostgreSQL: SQLite runs one instance' }, () => {});
    return;
  }
  const up = fakeUpstream(dialect);
  test('the time a change takes to reach the other instance is observed there', async () => {
    const cluster = await startCluster(dialect, 2, { tavilyBaseUrl: up.fake.url, env: { METRICS_TOKEN } });
    try {
      const [a, b] = cluster.instances as [TestApp, TestApp];
      const lag = async (t: TestApp) => (await scrape(t)).observed('tavily_pool_sync_lag_seconds');
      const before = await lag(b);
      // An admin change on A: B hears it.
      await a.app.inject({ method: 'POST', url: '/api/v1/admin/tokens', headers: a.auth, payload: { name: 'heard' } });
      const deadline = Date.now() + 10_000;
      while ((await lag(b)) === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.ok((await lag(b)) > before, 'B observed the lag of A’s notice');
    } finally {
      await cluster.close();
    }
  });
});

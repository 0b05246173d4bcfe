import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addMonths, nextCalendarMonth } from '../../src/cycles.js';
import { runsDry, runsDryWithResets } from '../../src/forecast.js';
import { fakeUpstream, keysAndToken } from '../support/app.js';
import { describeEachDialect } from '../support/db.js';

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 11, 10, 12);

test('the runs-dry date counts the resets to come: what lapses is lost, the cycle’s credits come in', () => {
  // 1,000 left, 1,000 a cycle, the cycle began 25 days ago: it resets in 5 or 6 days.
  const one = [{ remaining: 1000, limit: 1000, cycleStartedAt: addMonths(NOW + 5.5 * DAY, -1) }];
  // At 100 a day: 550 spent before the reset, 450 lost, then 1,000 more: dry 10 days after it.
  const dry = runsDryWithResets(one, 100, NOW)!;
  assert.equal((dry.getTime() - NOW) / DAY, 15.5);
  assert.equal(Math.round((runsDry(1000, 700, NOW)!.getTime() - NOW) / DAY), 10, 'without the resets: 10 days');
  // At 20 a day the resets bring more than is spent: it never runs dry.
  assert.equal(runsDryWithResets(one, 20, NOW), null);
  assert.equal(runsDryWithResets(one, 0, NOW), null, 'nothing spent: no date');
});

test('the forecast spends where credits lapse first', () => {
  // A: 300 left, resets in 2 days (to 300). B: 300 left, resets in 20 days (to 300). 100 a day.
  const a = { remaining: 300, limit: 300, cycleStartedAt: addMonths(NOW + 2.5 * DAY, -1) };
  const b = { remaining: 300, limit: 300, cycleStartedAt: addMonths(NOW + 20.5 * DAY, -1) };
  // Spending A first: 250 of A before its reset (50 lapse), then A's new 300 and B's 300: dry about 8.5 days in.
  // Spending B first would lapse A's 300 whole and run dry about 6.5 days in.
  const dry = runsDryWithResets([b, a], 100, NOW)!;
  assert.ok((dry.getTime() - NOW) / DAY > 8 && (dry.getTime() - NOW) / DAY < 9.5, `${(dry.getTime() - NOW) / DAY} days`);
  // A cycle not seen renews on the 1st of next month (UTC).
  const unseen = runsDryWithResets([{ remaining: 200, limit: 1000, cycleStartedAt: null }], 100, Date.UTC(2026, 11, 30, 12))!;
  assert.equal(unseen.toISOString(), new Date(Date.UTC(2027, 0, 11, 0)).toISOString(), '200 lasts past the 1st (50 lapse), then 1,000 for 10 days');
});

describeEachDialect('the summary’s forecast', (dialect) => {
  const up = fakeUpstream(dialect);

  test('lists what lapses within 7 days per account, saying whether the cycle was seen, and a runs-dry date with the resets', () =>
    up.withApp({}, async (t) => {
      const { token } = await keysAndToken(t, ['tvly-dev-fcast0000000001', 'tvly-dev-fcast0000000002', 'tvly-dev-fcast0000000003']);
      const refresh = await t.app.inject({ method: 'POST', url: '/api/v1/admin/tavily-keys/refresh-quota', headers: t.auth, payload: {} });
      assert.equal(refresh.statusCode, 200);
      const keys = (await t.app.inject({ method: 'GET', url: '/api/v1/admin/tavily-keys', headers: t.auth })).json().items as Array<{ id: number; key_masked: string }>;
      const id = (suffix: string) => keys.find((k) => k.key_masked.endsWith(suffix))!.id;
      // Keys 1 and 2 are one account whose cycle resets in 3 days; key 3 is its own, its cycle seen 10 days ago.
      const made = await t.app.inject({ method: 'POST', url: '/api/v1/admin/accounts', headers: t.auth, payload: { name: 'soon@example.com', key_ids: [id('0001'), id('0002')] } });
      assert.equal(made.statusCode, 201, made.body);
      const now = Date.now();
      const db = t.ctx.parts.database.db;
      await db.updateTable('tavily_accounts').set({ cycle_started_at: new Date(addMonths(now + 3 * DAY, -1)).toISOString() }).execute();
      await db.updateTable('tavily_keys').set({ cycle_started_at: new Date(now - 10 * DAY).toISOString() }).where('id', '=', id('0003')).execute();
      for (let i = 0; i < 5; i++) {
        const r = await t.app.inject({ method: 'POST', url: '/search', headers: { authorization: `Bearer ${token}` }, payload: { query: `q${i}` } });
        assert.equal(r.statusCode, 200);
      }
      await t.ctx.parts.outbox.flush();
      // 2,100 credits spent this week (300 a day): more than the resets bring.
      await db.insertInto('request_logs').values({ ts: new Date(now - DAY).toISOString(), token_id: null, key_id: id('0003'), endpoint: 'search', status: 200, attempts: 1, latency_ms: 1, credits: 2100, request_id: null, error: null, failovers: null, cache: null }).execute();
      const s = (await t.app.inject({ method: 'GET', url: '/api/v1/admin/summary', headers: t.auth })).json();
      const f = s.forecast;
      assert.equal(f.per_day, s.spent_7d / 7);
      assert.equal(f.lapsing_7d.length, 1, JSON.stringify(f.lapsing_7d));
      const soon = f.lapsing_7d[0];
      assert.equal(soon.name, 'soon@example.com');
      assert.equal(soon.keys, 2);
      assert.equal(soon.basis, 'cycle');
      assert.ok(Math.abs(Date.parse(soon.lapses_at) - (now + 3 * DAY)) < 60_000, soon.lapses_at);
      assert.ok(soon.credits > 0);
      assert.equal(f.lapsing_7d_total, soon.credits);
      assert.ok(f.runs_dry_at && f.runs_dry_without_resets_at, 'something was spent: both dates');
      assert.ok(Date.parse(f.runs_dry_at) > Date.parse(f.runs_dry_without_resets_at), `the resets make the credits last longer: ${JSON.stringify({ f, total: s.total_remaining, spent: s.spent_7d })}`);

      // The key of its own with no cycle seen: renewing on the 1st, said so when that is within a week.
      await db.updateTable('tavily_keys').set({ cycle_started_at: null }).where('id', '=', id('0003')).execute();
      const again = (await t.app.inject({ method: 'GET', url: '/api/v1/admin/summary', headers: t.auth })).json().forecast;
      const calendar = again.lapsing_7d.find((l: { account_id: number | null }) => l.account_id === null);
      if (nextCalendarMonth(Date.now()) - Date.now() <= 7 * DAY) {
        assert.equal(calendar.basis, 'calendar');
        assert.equal(calendar.lapses_at, new Date(nextCalendarMonth(Date.now())).toISOString());
      } else assert.equal(calendar, undefined, 'the 1st of next month is more than a week away');
    }));
});

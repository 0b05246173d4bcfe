import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { UsageShapeError, figuresFromUsage, parseUsage, remainingCredits } from '../../src/tavily/usage.js';

const AT = '2026-11-30T00:00:00.000Z';

const doc = {
  key: { usage: 150, limit: 1000, search_usage: 100, extract_usage: 25, crawl_usage: 15, map_usage: 7, research_usage: 3 },
  account: {
    current_plan: 'Bootstrap',
    plan_usage: 500,
    plan_limit: 15000,
    paygo_usage: 25,
    paygo_limit: 100,
    search_usage: 350,
    extract_usage: 75,
    crawl_usage: 50,
    map_usage: 15,
    research_usage: 10,
  },
};

describe('/usage parsing', () => {
  test('reads the documented shape', () => {
    const r = parseUsage(doc);
    assert.equal(r.key.usage, 150);
    assert.equal(r.account.current_plan, 'Bootstrap');
    const f = figuresFromUsage(r, AT);
    assert.equal(f.remaining_quota, 850);
    assert.equal(f.status, 'active');
    assert.deepEqual(JSON.parse(f.endpoint_usage!).key, { search_usage: 100, extract_usage: 25, crawl_usage: 15, map_usage: 7, research_usage: 3 });
    assert.equal(JSON.parse(f.endpoint_usage!).account.research_usage, 10);
  });

  test('the account caps a key: plan room plus pay-as-you-go room', () => {
    const r = parseUsage({ ...doc, account: { ...doc.account, plan_usage: 14900, paygo_usage: 40 } });
    assert.equal(remainingCredits(r), 100 + 60);
  });

  test('a key with no limit of its own spends what the account has', () => {
    const r = parseUsage({ key: { usage: 10, limit: null }, account: { ...doc.account, paygo_limit: null } });
    assert.equal(remainingCredits(r), 14500);
  });

  test('spent keys are exhausted, never negative', () => {
    const r = parseUsage({ key: { usage: 1200, limit: 1000 }, account: { current_plan: 'Researcher', plan_usage: 1200, plan_limit: 1000, paygo_usage: 0, paygo_limit: null } });
    const f = figuresFromUsage(r, AT);
    assert.equal(f.remaining_quota, 0);
    assert.equal(f.status, 'exhausted');
  });

  test('no limit anywhere: remaining is unknown (null), key stays active', () => {
    const f = figuresFromUsage(parseUsage({ key: { usage: 5, limit: null }, account: {} }), AT);
    assert.equal(f.remaining_quota, null);
    assert.equal(f.status, 'active');
  });

  test('wrong shapes are named', () => {
    assert.throws(() => parseUsage([]), UsageShapeError);
    assert.throws(() => parseUsage({}), /key is missing/);
    assert.throws(() => parseUsage({ key: { usage: '5' } }), /key.usage is not a number/);
    assert.throws(() => parseUsage({ key: { usage: 5 }, account: { plan_limit: 'x' } }), /account.plan_limit is not a number/);
  });

  test('figures out of range are refused, not turned into credits', () => {
    assert.throws(() => parseUsage({ key: { usage: -1000, limit: 1000 } }), /key.usage is out of range/);
    assert.throws(() => parseUsage({ key: { usage: 5, limit: 1e308 } }), /key.limit is out of range/);
    assert.throws(() => parseUsage({ key: { usage: 5 }, account: { paygo_usage: -1 } }), /account.paygo_usage is out of range/);
  });
});

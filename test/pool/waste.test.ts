import assert from 'node:assert/strict';
import { test } from 'node:test';
import { scenarios, simulate } from '../../bench/waste-sim.js';

// The waste simulation (npm run bench:waste) over 30 days: the real KeyPool choosing every key.
const [staggered, , freeBursty] = scenarios(7, 30);

test('the simulation is the same for the same seed', () => {
  assert.deepEqual(simulate(staggered!, 'most-remaining', 7), simulate(staggered!, 'most-remaining', 7));
  assert.notDeepEqual(simulate(scenarios(8, 30)[0]!, 'most-remaining', 8), simulate(staggered!, 'most-remaining', 7));
});

test('expiring-first lets at least 30% fewer credits lapse than most-remaining, refusing no more, with no more 429s', () => {
  for (const sc of [staggered!, freeBursty!]) {
    const base = simulate(sc, 'most-remaining', 7);
    const ef = simulate(sc, 'expiring-first', 7);
    assert.equal(ef.requests, base.requests, 'the same demand');
    assert.ok(base.lapsed > 0, `${sc.name}: something lapses under most-remaining`);
    assert.ok(ef.lapsed <= base.lapsed * 0.7, `${sc.name}: ${ef.lapsed} lapsed vs ${base.lapsed}`);
    assert.ok(ef.refusedNoCredits + ef.refusedRate <= base.refusedNoCredits + base.refusedRate, `${sc.name}: refusals`);
    assert.ok(ef.rateLimited <= base.rateLimited, `${sc.name}: 429s ${ef.rateLimited} vs ${base.rateLimited}`);
    assert.equal(ef.served + ef.refusedNoCredits + ef.refusedRate, ef.requests, 'every request is served or refused');
  }
});

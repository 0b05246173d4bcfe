import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { accountRanOut } from '../../src/pool/key-states.js';
import { addMonths, nextReset } from '../../src/cycles.js';
import { KeyPool, type PoolEntry, effectiveRemaining } from '../../src/pool/pool.js';
import { until } from '../support/receiver.js';

const entry = (id: number, remaining: number | null, over: Partial<PoolEntry> = {}): PoolEntry => ({
  id,
  plain: `tvly-dev-k${id}`,
  masked: `tvly-dev-…${id}`,
  health: 'active',
  enabled: true,
  remaining,
  lastUsed: 0,
  accountId: null,
  accountRemaining: null,
  coolUntil: 0,
  ...over,
});

const picks = (pool: KeyPool, n: number) => Array.from({ length: n }, () => pool.pick()!.id);

/** Waits until the key is back in the selectable set (fails after 15 s). */
async function backInPool(pool: KeyPool, id: number): Promise<void> {
  await until(() => pool.get(id)!.slot !== -1, `key ${id} to be back in the pool`);
}

describe('key pool', () => {
  test('most-remaining: the fullest key, spread at random over near-ties', () => {
    const pool = new KeyPool('most-remaining');
    pool.load([entry(1, 900), entry(2, 880), entry(3, 300), entry(4, 50)]);
    const seen = new Set(picks(pool, 200));
    assert.deepEqual([...seen].sort(), [1, 2], 'only the near-tied top keys serve');
  });

  test('most-remaining: spending moves a key down; a spent key leaves the pool', () => {
    const pool = new KeyPool('most-remaining');
    pool.load([entry(1, 1000), entry(2, 400)]);
    const k1 = pool.get(1)!;
    pool.deduct(k1, 700);
    assert.equal(pool.pick()!.id, 2);
    pool.deduct(pool.get(2)!, 400);
    assert.equal(pool.get(2)!.health, 'exhausted');
    assert.equal(pool.pick()!.id, 1);
    pool.deduct(k1, 300);
    assert.equal(pool.pick(), null);
    assert.deepEqual(pool.counts(), { total: 2, available: 0, disabled: 0, invalid: 0, exhausted: 2, cooling: 0 });
  });

  test('unknown quota counts as a free key’s month; disabled, invalid and exhausted keys are never picked', () => {
    const pool = new KeyPool('most-remaining');
    pool.load([entry(1, null), entry(2, 0), entry(3, 5000, { enabled: false }), entry(4, 5000, { health: 'invalid' }), entry(5, 10)]);
    assert.equal(pool.pick()!.id, 1);
    assert.equal(pool.pick(new Set([1]))!.id, 5);
    assert.equal(pool.pick(new Set([1, 5])), null);
  });

  test('round-robin takes each key in turn', () => {
    const pool = new KeyPool('round-robin');
    pool.load([entry(1, 10), entry(2, 1000), entry(3, 500)]);
    const p = picks(pool, 6);
    assert.deepEqual(p.slice(0, 3).sort(), [1, 2, 3]);
    assert.deepEqual(p.slice(3), p.slice(0, 3));
  });

  test('least-recently-used takes the key unused the longest', () => {
    const pool = new KeyPool('least-recently-used');
    pool.load([entry(1, 10), entry(2, 10), entry(3, 10)]);
    assert.deepEqual(picks(pool, 3), [1, 2, 3]);
    assert.equal(pool.pick(new Set([1]))!.id, 2);
    // Key 1 was used before key 3: it is the least recently used now.
    assert.equal(pool.pick()!.id, 1);
    assert.equal(pool.pick()!.id, 3);
  });

  test('a cooling key rests, then comes back by itself', async () => {
    const pool = new KeyPool('round-robin');
    pool.load([entry(1, 10), entry(2, 10)]);
    pool.coolDown(pool.get(1)!, 0.05);
    assert.deepEqual(new Set(picks(pool, 4)), new Set([2]));
    assert.equal(pool.counts().cooling, 1);
    await backInPool(pool, 1);
    assert.deepEqual(new Set(picks(pool, 4)), new Set([1, 2]));
    pool.close();
  });

  test('reloading keeps cooldowns of keys still present', () => {
    const pool = new KeyPool('most-remaining');
    pool.load([entry(1, 10), entry(2, 10)]);
    pool.coolDown(pool.get(1)!, 60);
    pool.load([entry(1, 500), entry(2, 10), entry(3, 10)]);
    assert.ok(pool.get(1)!.coolUntil > Date.now());
    assert.ok(!new Set(picks(pool, 20)).has(1));
    pool.close();
  });

  test('a key cooling across a reload still comes back when its cooldown ends', async () => {
    const pool = new KeyPool('round-robin');
    pool.load([entry(1, 10), entry(2, 10)]);
    pool.coolDown(pool.get(1)!, 0.05);
    pool.load([entry(1, 10), entry(2, 10)]);
    assert.deepEqual(new Set(picks(pool, 4)), new Set([2]));
    await backInPool(pool, 1);
    assert.deepEqual(new Set(picks(pool, 4)), new Set([1, 2]), 'the reloaded key is picked again');
    pool.close();
  });

  test('a cooldown read from the database rests the key, and coolUntil() takes the later time', async () => {
    const pool = new KeyPool('round-robin');
    pool.load([entry(1, 10, { coolUntil: Date.now() + 60 }), entry(2, 10)]);
    assert.equal(pool.counts().cooling, 1);
    pool.coolUntil(pool.get(1)!, Date.now() - 1000);
    assert.equal(pool.counts().cooling, 1, 'an earlier time does not shorten the rest');
    pool.coolUntil(pool.get(2)!, Date.now() + 60_000);
    assert.equal(pool.pick(), null);
    await backInPool(pool, 1);
    assert.equal(pool.pick()!.id, 1);
    pool.close();
  });
});

test('a refresh moves keys in and out of the selectable set without a reload', () => {
  const pool = new KeyPool('most-remaining');
  pool.load([entry(1, 0, { health: 'exhausted' }), entry(2, 50)]);
  assert.equal(pool.pick()!.id, 2);
  pool.refreshed(1, 'active', 900);
  assert.equal(pool.pick()!.id, 1, 'a key with credits again is used at once');
  pool.refreshed(1, 'invalid', 900);
  pool.refreshed(2, 'exhausted', 0);
  assert.equal(pool.pick(), null);
});

test('update() replaces some keys and drops others, leaving the rest and their cooldowns alone', () => {
  const pool = new KeyPool('round-robin');
  pool.load([entry(1, 10), entry(2, 10), entry(3, 10)]);
  pool.coolDown(pool.get(3)!, 60);
  pool.update([entry(1, 10, { enabled: false }), entry(4, 10)], [2]);
  assert.equal(pool.get(2), undefined);
  assert.deepEqual(new Set(picks(pool, 6)), new Set([4]), 'disabled 1 and cooling 3 are not picked');
  pool.update([entry(3, 50)]);
  assert.ok(pool.get(3)!.coolUntil > Date.now(), 'a replaced key keeps its cooldown');
  assert.deepEqual(pool.counts(), { total: 3, available: 1, disabled: 1, invalid: 0, exhausted: 0, cooling: 1 });
  pool.close();
});

describe('keys of one account in the pool', () => {
  const member = (id: number, remaining: number | null, account: number, room: number | null) => entry(id, remaining, { accountId: account, accountRemaining: room });

  test('they share the account’s room: a spend by one lowers it for all, and at nothing none is chosen', () => {
    const pool = new KeyPool('most-remaining');
    // Three keys of account 7 (100 credits left between them) and a key of its own with 60.
    pool.load([member(1, 1000, 7, 100), member(2, 1000, 7, 100), member(3, 30, 7, 100), entry(4, 60)]);
    const a = pool.get(1)!.account!;
    assert.equal(pool.get(2)!.account, a, 'one account object');
    assert.equal(effectiveRemaining(pool.get(1)!), 100, 'capped by the account');
    assert.equal(effectiveRemaining(pool.get(3)!), 30, 'its own figure is smaller');
    assert.equal(pool.pick()!.account, a, 'the account ranks by its 100, above the key of 60');
    pool.deduct(pool.get(1)!, 50);
    assert.equal(a.remaining, 50);
    assert.equal(effectiveRemaining(pool.get(2)!), 50, 'the other keys of the account have less too');
    assert.equal(pool.pick()!.id, 4, 'now the key of 60 ranks first');
    pool.deduct(pool.get(2)!, 50);
    assert.equal(a.remaining, 0);
    assert.deepEqual(new Set(picks(pool, 10)), new Set([4]), 'no key of a spent account is chosen');
    assert.equal(pool.counts().exhausted, 3);
    pool.setAccountRemaining(7, 500);
    assert.ok(new Set(picks(pool, 40)).has(1), 'room again: its keys are chosen again');
    pool.close();
  });

  test('keys join and leave accounts as they are read again', () => {
    const pool = new KeyPool('round-robin');
    pool.load([member(1, 100, 7, 5), member(2, 100, 7, 5)]);
    pool.update([entry(2, 100)]);
    assert.equal(pool.get(2)!.account, null);
    assert.deepEqual([...pool.account(7)!.keys].map((k) => k.id), [1]);
    pool.update([], [1]);
    assert.equal(pool.account(7), undefined, 'an account with no keys left is dropped');
    // A key read with a new room for its account re-ranks the account's other keys.
    pool.update([member(1, 100, 8, 0), member(2, 100, 8, 0)]);
    assert.equal(pool.pick(), null);
    pool.update([member(1, 100, 8, 40)]);
    assert.equal(effectiveRemaining(pool.get(2)!), 40);
    assert.ok(pool.pick());
    pool.close();
  });

  test('a 432 means the account ran out unless the key’s own figure is the smaller room; a 433 always does', () => {
    const pool = new KeyPool('round-robin');
    pool.load([member(1, 3, 7, 900), member(2, 900, 7, 900), member(3, null, 8, 50), entry(4, 10), member(5, null, 9, null)]);
    assert.equal(accountRanOut(pool.get(1)!, 432), false, 'its own limit (3 < 900) binds');
    assert.equal(accountRanOut(pool.get(1)!, 433), true);
    assert.equal(accountRanOut(pool.get(2)!, 432), true, 'the account’s room is what binds');
    assert.equal(accountRanOut(pool.get(3)!, 432), true, 'no limit of its own');
    assert.equal(accountRanOut(pool.get(5)!, 432), false, 'no figures at all: only the key');
    pool.close();
  });

  describe('expiring-first', () => {
    const DAY = 86_400_000;
    const NOW = Date.UTC(2026, 11, 10, 12); // 10 December 2026, noon UTC
    const clock = (start = NOW) => {
      const c = { now: start, read: () => c.now };
      return c;
    };

    test('the account whose cycle ends first is spent first, even with less left; most-remaining does the opposite', () => {
      const entries = [
        // Cycle seen on 15 November: resets 15 December. 300 left.
        entry(1, 300, { accountId: 1, accountRemaining: 300, cycleStartedAt: Date.UTC(2026, 10, 15, 9) }),
        entry(2, 300, { accountId: 1, accountRemaining: 300, cycleStartedAt: Date.UTC(2026, 10, 15, 9) }),
        // Cycle seen on 8 December: resets 8 January. 900 left.
        entry(3, 900, { plain: 'tvly-prod-k3', cycleStartedAt: Date.UTC(2026, 11, 8, 9) }),
      ];
      const c = clock();
      const pool = new KeyPool('expiring-first', { clock: c.read });
      pool.load(entries);
      assert.deepEqual(new Set(picks(pool, 40)), new Set([1, 2]), 'the keys of the account lapsing on the 15th share its load');
      assert.equal(pool.get(1)!.renewalBasis, 'cycle');
      assert.equal(pool.get(1)!.lapsesAt, Date.UTC(2026, 11, 15, 9));
      const most = new KeyPool('most-remaining', { clock: c.read });
      most.load(entries);
      assert.deepEqual(new Set(picks(most, 40)), new Set([3]));
      // Spent out, the next to lapse serves.
      pool.deduct(pool.get(1)!, 300);
      assert.equal(pool.pick()!.id, 3);
    });

    test('a cycle not seen yet counts as renewing on the 1st of next month (UTC)', () => {
      const c = clock();
      const pool = new KeyPool('expiring-first', { clock: c.read });
      pool.load([
        entry(1, 900, { cycleStartedAt: Date.UTC(2026, 11, 5) }), // resets 5 January
        entry(2, 100, { cycleStartedAt: null }), // unknown: 1 January
      ]);
      assert.equal(pool.get(2)!.renewalBasis, 'calendar');
      assert.equal(pool.get(2)!.lapsesAt, Date.UTC(2027, 0, 1));
      assert.equal(pool.pick()!.id, 2);
    });

    test('within a day, by what is left', () => {
      const c = clock();
      const pool = new KeyPool('expiring-first', { clock: c.read });
      const start = Date.UTC(2026, 10, 20);
      pool.load([entry(1, 50, { cycleStartedAt: start }), entry(2, 800, { cycleStartedAt: start + 3600_000 }), entry(3, 5000, { cycleStartedAt: Date.UTC(2026, 10, 21) })]);
      assert.deepEqual(new Set(picks(pool, 30)), new Set([2]));
    });

    test('a key is passed over at 90% of its per-key rate, and serves again as the minute passes', () => {
      const c = clock();
      const pool = new KeyPool('expiring-first', { clock: c.read });
      // A development key (100 a minute) lapsing first, a production key (1,000) after.
      pool.load([entry(1, 10_000, { cycleStartedAt: Date.UTC(2026, 10, 12) }), entry(2, 10_000, { plain: 'tvly-prod-k2', cycleStartedAt: Date.UTC(2026, 11, 1) })]);
      assert.deepEqual(picks(pool, 90), Array(90).fill(1));
      assert.equal(pool.pick()!.id, 2, 'the 91st request of the minute goes elsewhere');
      const second = picks(pool, 500);
      assert.ok(second.every((id) => id === 2));
      c.now += 90_000; // half a minute into the next: the window holds half of the last one (45)
      const next = picks(pool, 44);
      assert.ok(next.every((id) => id === 1), 'back to the key lapsing first');
      assert.equal(picks(pool, 2).at(-1), 2, 'until it is that busy again');
      c.now += 120_000;
      assert.equal(picks(pool, 90).filter((id) => id === 1).length, 90);
      // When every key is that busy, the earliest is taken anyway: Tavily decides.
      const busy = new KeyPool('expiring-first', { clock: c.read });
      busy.load([entry(7, 1000, { cycleStartedAt: Date.UTC(2026, 10, 12) })]);
      assert.equal(picks(busy, 150).filter((id) => id === 7).length, 150);
    });

    test('once its reset has passed, a key is ranked by the next one', () => {
      const c = clock();
      const pool = new KeyPool('expiring-first', { clock: c.read });
      pool.load([entry(1, 500, { cycleStartedAt: Date.UTC(2026, 10, 11) }), entry(2, 500, { cycleStartedAt: Date.UTC(2026, 10, 20) })]);
      assert.equal(pool.pick()!.id, 1);
      c.now = Date.UTC(2026, 11, 12); // past the 11th: key 1 renewed, next on 11 January; key 2 on 20 December
      assert.equal(pool.pick()!.id, 2);
      assert.equal(pool.get(1)!.lapsesAt, Date.UTC(2027, 0, 11));
    });

    test('cycles: months keep the day, or the month’s last', () => {
      assert.equal(addMonths(Date.UTC(2026, 0, 31), 1), Date.UTC(2026, 1, 28));
      assert.equal(nextReset(Date.UTC(2026, 0, 31), Date.UTC(2026, 1, 10)).at, Date.UTC(2026, 1, 28));
      assert.equal(nextReset(Date.UTC(2025, 5, 3, 4), Date.UTC(2026, 11, 10)).at, Date.UTC(2027, 0, 3, 4), 'a cycle seen long ago still gives its day');
      assert.deepEqual(nextReset(null, Date.UTC(2026, 11, 31, 23)), { at: Date.UTC(2027, 0, 1), basis: 'calendar' });
    });
  });
});

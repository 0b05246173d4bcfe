import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BudgetLedger, type BudgetFeed, type LevelItem, type Reservation } from '../../src/gateway/budget.js';
import { registry, tokenRow as row } from '../support/tokens.js';

const admitted = (r: Reservation) => r.ok;

/**
 * An in-memory change feed with PostgreSQL's guarantee: every notice goes to every listener in
 * one order (the order `deliver` releases them), the sender included.
 */
class Hub {
  readonly log: Array<{ from: string; seq: number; items: LevelItem[] }> = [];
  readonly members = new Map<string, { ledger: BudgetLedger; seq: number; listening: boolean }>();

  feed(id: string, instances = () => this.members.size): BudgetFeed {
    const hub = this;
    return {
      instanceId: id,
      get listening() {
        return hub.members.get(id)!.listening;
      },
      post(items) {
        const m = hub.members.get(id)!;
        const seq = ++m.seq;
        hub.log.push({ from: id, seq, items });
        return { seq, sent: Promise.resolve() };
      },
      instances,
    };
  }

  join(id: string, ledger: BudgetLedger): void {
    this.members.set(id, { ledger, seq: 0, listening: true });
  }

  /** Delivers every notice sent so far, in order, to every member. */
  deliver(): void {
    while (this.log.length > 0) {
      const n = this.log.shift()!;
      for (const [id, m] of this.members) {
        if (id === n.from) m.ledger.echoed(n.seq);
        else for (const [, instance, tokenId, credits] of n.items) m.ledger.remoteLevel(instance, tokenId, credits);
      }
    }
  }
}

/** Lets setImmediate callbacks (the ledger sends one notice per turn) and promise callbacks run. */
const turn = () => new Promise((r) => setImmediate(r));

describe('the budget ledger on one instance', () => {
  test('reserves the most a call can cost, refuses what the rest cannot cover, and settles to the real cost', () => {
    const tokens = registry(row(1, 10));
    const ledger = new BudgetLedger({ tokens });
    const t = tokens.byId(1)!;
    const a = ledger.reserve(t, 6) as Reservation;
    assert.ok(a.ok && a.hold);
    const b = ledger.reserve(t, 5) as Reservation;
    assert.equal(b.ok, false, 'held 6 of 10: 5 more does not fit');
    assert.match((b as { message: string }).message, /may cost up to 5 credits; this token has 4 of its monthly budget of 10 credits left \(0 spent in \d{4}-\d{2}, 6 held by requests in flight\)/);
    ledger.settle(t, a.hold, 2);
    assert.equal(t.spent, 2);
    assert.equal(ledger.held(1), 0);
    assert.ok((ledger.reserve(t, 8) as Reservation).ok, 'after settling at 2, 8 fit');
    assert.equal((ledger.reserve(t, 1) as Reservation).ok, false);
  });

  test('a hold ends once: settling or releasing it again changes nothing', () => {
    const tokens = registry(row(1, 10));
    const ledger = new BudgetLedger({ tokens });
    const t = tokens.byId(1)!;
    const r = ledger.reserve(t, 4) as Reservation & { ok: true };
    ledger.release(r.hold);
    ledger.release(r.hold);
    ledger.settle(t, r.hold, 0);
    assert.equal(ledger.held(1), 0);
    assert.equal(ledger.left(t), 10);
  });

  test('a token without a budget holds nothing; a covered call (a research poll) needs only a budget not overspent', () => {
    const tokens = registry(row(1, null), row(2, 10));
    const ledger = new BudgetLedger({ tokens });
    assert.deepEqual(ledger.reserve(tokens.byId(1)!, 1000), { ok: true, hold: null });
    const t = tokens.byId(2)!;
    const task = ledger.reserve(t, 10) as Reservation & { ok: true };
    assert.equal((ledger.reserve(t, 0) as Reservation).ok, true, 'a free call with nothing left is let in');
    assert.equal((ledger.reserve(t, 0, task.hold) as Reservation).ok, true, 'the poll of the task holding the budget is let in');
    ledger.settle(t, null, 15); // spent more than the budget (another instance, an admin lowering it)
    assert.equal((ledger.reserve(t, 0, task.hold) as Reservation).ok, false, 'an overspent budget stops the polls');
  });
});

describe('the budget ledger across instances (a feed that delivers notices in one order)', () => {
  function pair(slack = 0) {
    const hub = new Hub();
    const tokensA = registry(row(1, 10));
    const tokensB = registry(row(1, 10));
    const a = new BudgetLedger({ tokens: tokensA, feed: hub.feed('A'), slack });
    const b = new BudgetLedger({ tokens: tokensB, feed: hub.feed('B'), slack });
    hub.join('A', a);
    hub.join('B', b);
    a.peerSeen('B');
    b.peerSeen('A');
    return { hub, a, b, ta: tokensA.byId(1)!, tb: tokensB.byId(1)! };
  }

  test('two instances reaching for the last credits at once: the notice ordered first wins, the other is refused', async () => {
    const { hub, a, b, ta, tb } = pair();
    const ra = a.reserve(ta, 8) as Promise<Reservation>;
    const rb = b.reserve(tb, 8) as Promise<Reservation>;
    assert.ok(ra instanceof Promise && rb instanceof Promise, 'each waits for its notice to come back');
    await turn(); // both notices sent
    await turn();
    hub.deliver();
    const [xa, xb] = await Promise.all([ra, rb]);
    assert.equal(xa.ok, true, "A's notice went first");
    assert.equal(xb.ok, false, 'B heard A before its own notice came back');
    await turn();
    hub.deliver();
    assert.equal(b.left(tb), 2, 'B counts what A holds');
    assert.equal(a.left(ta), 2);
  });

  test('without the feed (a plain local decision) both would have been admitted: the test can fail', () => {
    const tokensA = registry(row(1, 10));
    const tokensB = registry(row(1, 10));
    const a = new BudgetLedger({ tokens: tokensA });
    const b = new BudgetLedger({ tokens: tokensB });
    assert.equal([a.reserve(tokensA.byId(1)!, 8), b.reserve(tokensB.byId(1)!, 8)].filter((r) => admitted(r as Reservation)).length, 2);
  });

  test('spend settled on one instance counts on the other until its flush is read, and not twice after', async () => {
    const { hub, a, b, ta, tb } = pair();
    const r = a.reserve(ta, 5) as Promise<Reservation>;
    await turn();
    hub.deliver();
    const x = (await r) as Reservation & { ok: true };
    a.settle(ta, x.hold, 3);
    await turn();
    hub.deliver();
    assert.equal(b.left(tb), 7, 'A charged 3 and holds nothing: B counts the 3 as outstanding on A');
    // A's flush commits: the other instance reads the 3 as spent from it ('t' item), and A's figure drops.
    tb.spent += 3;
    a.flushed([[1, ta.month, 3]]);
    await turn();
    hub.deliver();
    assert.equal(b.left(tb), 7, 'counted once');
  });

  test("a flush's notice carries A's figure after it: B never counts the flushed credits twice, not even between two notices", async () => {
    const { hub, a, b, ta, tb } = pair();
    const r = a.reserve(ta, 6) as Promise<Reservation>;
    await turn();
    hub.deliver();
    a.settle(ta, ((await r) as Reservation & { ok: true }).hold, 6);
    await turn();
    hub.deliver();
    assert.equal(b.left(tb), 4, 'B counts the 6 A charged and has not flushed');
    // The flush's notice, as B applies it: the spend ('t' item) and A's figure after it, together.
    const flushed = [[1, ta.month, 6]] as const;
    const levels = a.levelsAfterFlush(flushed);
    assert.deepEqual(levels, [['v', 'A', 1, 0]]);
    tb.spent += 6;
    for (const [, instance, tokenId, credits] of levels) b.remoteLevel(instance, tokenId, credits);
    assert.equal(b.left(tb), 4, 'spent 6, nothing outstanding on A: 4 left, at once');
    a.flushed(flushed);
    await turn();
    hub.deliver();
    assert.equal(b.left(tb), 4);
  });

  test('CLUSTER_BUDGET_SLACK: calls within it go at once, and the overshoot stays within (instances − 1) × slack', async () => {
    const { hub, a, b, ta, tb } = pair(3);
    // Both reach for credits in calls of 1, a call a turn each; the feed delivers every fifth turn.
    const calls: Array<Reservation | Promise<Reservation>> = [];
    let immediate = 0;
    for (let i = 0; i < 10; i++) {
      for (const [l, t] of [[a, ta], [b, tb]] as const) {
        const r = l.reserve(t, 1);
        if (!(r instanceof Promise)) immediate++;
        calls.push(r);
      }
      await turn();
      if (i % 5 === 4) hub.deliver();
    }
    for (let i = 0; i < 3; i++) {
      await turn();
      hub.deliver();
    }
    const got = await Promise.all(calls);
    assert.ok(immediate >= 6 && immediate < 20, `the calls within the slack went at once, the others waited (${immediate} of 20 at once)`);
    const held = got.filter(admitted).length;
    assert.ok(held <= 10 + 3, `${held} credits held against a budget of 10 with a slack of 3`);
    assert.ok(held >= 10, 'the budget is spent');
  });

  test('while the feed is lost an instance spends at most its share of what is left', () => {
    const { hub, a, ta } = pair();
    hub.members.get('A')!.listening = false;
    assert.equal((a.reserve(ta, 5) as Reservation).ok, true, 'half of 10');
    assert.equal((a.reserve(ta, 1) as Reservation).ok, false, 'no more than its half');
  });

  test('a notice that never comes back: the waiting call is decided on the share after the timeout', async () => {
    const hub = new Hub();
    const tokens = registry(row(1, 10));
    const a = new BudgetLedger({ tokens, feed: hub.feed('A', () => 2), echoTimeoutMs: 30 });
    hub.join('A', a);
    // The ledger's timers do not hold the process open; this test's wait does.
    const keep = setInterval(() => {}, 1000);
    try {
      const r = await a.reserve(tokens.byId(1)!, 6);
      assert.equal(r.ok, false, '6 is more than its share (5)');
      assert.equal((await a.reserve(tokens.byId(1)!, 5)).ok, true);
    } finally {
      clearInterval(keep);
    }
  });

  test("a lost instance's figure stops counting", () => {
    const tokens = registry(row(1, 10));
    const a = new BudgetLedger({ tokens });
    const t = tokens.byId(1)!;
    const now = Date.now();
    a.remoteLevel('gone', 1, 9, now - 60_000);
    assert.equal(a.left(t, now), 10, 'not heard for a minute: ignored');
    a.remoteLevel('here', 1, 9, now);
    assert.equal(a.left(t, now), 1);
  });
});

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Cron } from 'croner';
import { DEFAULT_EXHAUSTED_RECHECK_CRON } from '../../src/config.js';
import { type TestApp, fakeUpstream, startCluster } from '../support/app.js';
import { describeEachDialect, dialects } from '../support/db.js';
import type { FakeTavily } from '../support/fake-tavily.js';

const KEYS = '/api/v1/admin/tavily-keys';

/** Five keys of one Tavily account ("team"), and a key of another account. */
const teamKeys = (tag: string) => Array.from({ length: 5 }, (_, i) => `tvly-dev-team${tag}${String(i).padStart(6, '0')}`);

async function addKeys(t: TestApp, payload: object | string, query = '?validate=true') {
  const res = await t.app.inject({
    method: 'POST',
    url: `${KEYS}${query}`,
    headers: { ...t.auth, ...(typeof payload === 'string' ? { 'content-type': 'text/plain' } : {}) },
    payload,
  });
  assert.equal(res.statusCode, 201, res.body);
  return res.json() as { added: number; accounts: number; items: { id: number; key_masked: string; account_id: number | null; account_name: string | null }[] };
}

async function token(t: TestApp): Promise<string> {
  const res = await t.app.inject({ method: 'POST', url: '/api/v1/admin/tokens', headers: t.auth, payload: { name: 'agent' } });
  return res.json().token as string;
}

const search = (t: TestApp, tok: string, query = 'q') =>
  t.app.inject({ method: 'POST', url: '/search', headers: { authorization: `Bearer ${tok}` }, payload: { query } });

async function summary(t: TestApp) {
  return (await t.app.inject({ method: 'GET', url: '/api/v1/admin/summary', headers: t.auth })).json() as { total_remaining: number; accounts: number };
}

async function inBatches(n: number, width: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < n) await fn(next++);
  }));
}

/** Until `check` holds, or fail after `ms`. */
async function until(check: () => boolean | Promise<boolean>, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) assert.fail(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function setUpTeam(fake: FakeTavily, tag: string, opts: { planUsage?: number; cycleDay?: number } = {}) {
  const team = teamKeys(tag);
  fake.addAccount(`team-${tag}`, { plan: 'Project', planLimit: 4000, planUsage: opts.planUsage ?? 3000, cycleDay: opts.cycleDay, keys: team });
  // Another account, of one key with 300 credits left.
  const other = `tvly-dev-other${tag}000000`;
  fake.addAccount(`other-${tag}`, { planLimit: 1000, planUsage: 700, keys: [other] });
  return { team, other };
}

describeEachDialect('Tavily accounts', (dialect) => {
  const up = fakeUpstream(dialect);

  test('five keys of one account count once; its 1,000 credits spent, the next search goes to another account with no 432', () =>
    up.withApp({}, async (t) => {
      const { team, other } = setUpTeam(up.fake, 'a');
      const added = await addKeys(t, { keys: team, account: 'team@example.com' });
      assert.equal(added.accounts, 1);
      assert.ok(added.items.every((i) => i.account_name === 'team@example.com'));
      const otherAdded = await addKeys(t, { keys: [other] });
      const s = await summary(t);
      assert.equal(s.total_remaining, 1000 + 300, 'the account’s 1,000 credits once, not 5,000, plus the other account’s 300');
      assert.equal(s.accounts, 1);
      const list = (await t.app.inject({ method: 'GET', url: `${KEYS}?account_id=${added.items[0]!.account_id}`, headers: t.auth })).json();
      assert.equal(list.total, 5);
      assert.ok(list.items.every((k: { remaining_quota: number }) => k.remaining_quota === 1000));

      // The other account's key is out of the way while the team's credits are spent.
      await t.app.inject({ method: 'PATCH', url: `${KEYS}/${otherAdded.items[0]!.id}`, headers: t.auth, payload: { enabled: false } });
      const tok = await token(t);
      let ok = 0;
      await inBatches(1000, 10, async (i) => {
        const res = await search(t, tok, `q${i}`);
        if (res.statusCode === 200) ok++;
        else assert.fail(`search ${i}: ${res.statusCode} ${res.body}`);
      });
      assert.equal(ok, 1000);
      const acct = up.fake.account('team-a');
      assert.equal(acct.planUsage, 4000, 'the account’s plan is used up');
      for (const k of team) assert.ok((up.fake.stats.requestsByKey.get(k) ?? 0) > 0, `${k} served some: the load was spread`);
      assert.equal(up.fake.stats.refusedForCredits, 0, 'no request reached Tavily past the account’s room');
      for (const id of added.items.map((i) => i.id)) {
        const k = t.ctx.parts.pool.get(id)!;
        assert.equal(k.account!.remaining, 0);
      }
      assert.equal(t.ctx.parts.pool.pick(), null, 'no key of the account is chosen');

      await t.app.inject({ method: 'PATCH', url: `${KEYS}/${otherAdded.items[0]!.id}`, headers: t.auth, payload: { enabled: true } });
      const before = new Map(team.map((k) => [k, up.fake.stats.requestsByKey.get(k) ?? 0]));
      const res = await search(t, tok, 'the 1,001st');
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(up.fake.stats.requestsByKey.get(other), 1, 'served by the other account’s key');
      for (const k of team) assert.equal(up.fake.stats.requestsByKey.get(k) ?? 0, before.get(k), `${k} was not tried`);
      await t.ctx.parts.outbox.flush();
      assert.equal((await summary(t)).total_remaining, 299);
    }));

  test('a 432 from the account’s plan marks all its keys exhausted; a key’s own limit only that key', () =>
    // Each key in turn, so that the key with little room of its own is chosen too.
    up.withApp({ KEY_STRATEGY: 'round-robin' }, async (t) => {
      const own = 'tvly-dev-ownlimit0000001';
      const mates = ['tvly-dev-ownlimit0000002', 'tvly-dev-ownlimit0000003'];
      // The first key may spend 3 credits of its own; the account has 2,000 left.
      up.fake.addAccount('limits', { plan: 'Project', planLimit: 4000, planUsage: 2000, keys: [{ key: own, limit: 3 }, ...mates] });
      const added = await addKeys(t, { keys: [own, ...mates], account: 'limits' });
      const ids = added.items.map((i) => i.id);
      // The pool's figures say the key has 3 of its own: spent elsewhere, Tavily refuses the next.
      up.fake.spendOutside(own, 3);
      const tok = await token(t);
      for (let i = 0; i < 20; i++) assert.equal((await search(t, tok)).statusCode, 200);
      assert.equal(t.ctx.parts.pool.get(ids[0]!)!.health, 'exhausted', 'the key over its own limit is out');
      assert.equal(t.ctx.parts.pool.get(ids[1]!)!.health, 'active', 'its account’s other keys are not');
      assert.equal(t.ctx.parts.pool.get(ids[2]!)!.health, 'active');

      // Now the plan: spent to nothing outside the pool, then one 432 takes the whole account out.
      up.fake.spendOutside(mates[0]!, 2000);
      const res = await search(t, tok);
      assert.equal(res.statusCode, 503, 'no key of any account has credits');
      assert.equal(up.fake.stats.refusedForCredits, 2, 'the own-limit 432, then one 432 for the account: its other key was not tried');
      for (const id of ids) assert.equal(t.ctx.parts.pool.get(id)!.health, 'exhausted');
      await t.ctx.parts.outbox.flush();
      const stored = await t.ctx.parts.database.db.selectFrom('tavily_accounts').select('remaining').executeTakeFirstOrThrow();
      assert.equal(stored.remaining, 0);
    }));

  test('an account whose cycle restarts on the 17th is served again by the low-rate check, without an admin', () =>
    up.withApp({}, async (t) => {
      up.fake.setNow(Date.parse('2026-12-16T20:00:00Z'));
      try {
        const keys = ['tvly-dev-cycle17000001', 'tvly-dev-cycle17000002', 'tvly-dev-cycle17000003'];
        up.fake.addAccount('cycle', { planLimit: 1000, planUsage: 1000, cycleDay: 17, keys });
        const added = await addKeys(t, { keys, account: 'cycle' });
        const ids = added.items.map((i) => i.id);
        for (const id of ids) assert.equal((await t.ctx.parts.repos.keys.getById(id))!.status, 'exhausted');
        const tok = await token(t);
        assert.equal((await search(t, tok)).statusCode, 503);

        // The default schedule checks exhausted keys at least once a day.
        const runs = new Cron(DEFAULT_EXHAUSTED_RECHECK_CRON, { timezone: 'UTC', paused: true }).nextRuns(10, new Date('2026-12-16T20:00:00Z'));
        for (let i = 1; i < runs.length; i++) assert.ok(runs[i]!.getTime() - runs[i - 1]!.getTime() <= 24 * 3600_000);
        const scheduler = t.ctx.jobs;
        // Still the 16th: nothing changes (keys checked within the hour are left alone, so age them).
        const age = () => t.ctx.parts.database.db.updateTable('tavily_keys').set({ last_refreshed_at: '2026-01-01T00:00:00.000Z' }).execute();
        await age();
        up.fake.resetStats();
        assert.equal(await scheduler.runNow('recheck-exhausted'), 'ran');
        assert.equal(up.fake.stats.usageCalls, 3, 'each exhausted key was checked');
        for (const id of ids) assert.equal((await t.ctx.parts.repos.keys.getById(id))!.status, 'exhausted');

        // The 17th: Tavily's figures fall, and the keys come back with their new figures.
        up.fake.setNow(Date.parse('2026-12-17T00:30:00Z'));
        await age();
        assert.equal(await scheduler.runNow('recheck-exhausted'), 'ran');
        for (const id of ids) {
          const k = (await t.ctx.parts.repos.keys.getById(id))!;
          assert.equal(k.status, 'active');
          assert.ok(k.cycle_started_at, 'the new cycle is recorded on the key');
        }
        const account = (await t.app.inject({ method: 'GET', url: `/api/v1/admin/accounts/${added.items[0]!.account_id}`, headers: t.auth })).json();
        assert.ok(account.cycle_started_at, 'and on the account');
        assert.equal(account.remaining, 1000);
        assert.equal((await search(t, tok)).statusCode, 200);
      } finally {
        up.fake.setNow(null);
      }
    }));

  test('one key of an account refreshed in a new cycle brings its exhausted mates back in the same run', () =>
    up.withApp({}, async (t) => {
      const keys = ['tvly-dev-mates000000001', 'tvly-dev-mates000000002'];
      up.fake.setNow(Date.parse('2026-12-02T00:00:00Z'));
      try {
        up.fake.addAccount('mates', { planLimit: 1000, planUsage: 1000, cycleDay: 3, keys });
        const added = await addKeys(t, { keys, account: 'mates' });
        up.fake.setNow(Date.parse('2026-12-03T01:00:00Z'));
        up.fake.resetStats();
        const r = await t.app.inject({ method: 'POST', url: `${KEYS}/refresh-quota`, headers: t.auth, payload: { ids: [added.items[0]!.id] } });
        assert.equal(r.statusCode, 200, r.body);
        assert.equal(r.json().total, 2, 'its mate was checked too');
        assert.equal(up.fake.stats.usageCalls, 2);
        for (const i of added.items) assert.equal(t.ctx.parts.pool.get(i.id)!.health, 'active');
      } finally {
        up.fake.setNow(null);
      }
    }));

  test('usage spent outside the pool is reported on the key after the next refresh, with both figures', () =>
    up.withApp({}, async (t) => {
      const key = 'tvly-dev-leaked00000001';
      const outsider = 'tvly-dev-leaked00000002';
      up.fake.addAccount('leak', { plan: 'Project', planLimit: 4000, planUsage: 100, keys: [key, outsider] });
      const added = await addKeys(t, { keys: [key], account: 'leak' });
      const id = added.items[0]!.id;
      const tok = await token(t);
      for (let i = 0; i < 5; i++) assert.equal((await search(t, tok)).statusCode, 200);
      up.fake.spendOutside(key, 50);
      // A key of the account that is not in the pool spends too: the account's drift shows it.
      up.fake.spendOutside(outsider, 30);
      const r = await t.app.inject({ method: 'POST', url: `${KEYS}/refresh-quota`, headers: t.auth, payload: {} });
      const result = r.json();
      assert.deepEqual(
        result.drift.map((d: { id: number | null; tavily: number; pool: number }) => [d.id, d.tavily, d.pool]),
        [[id, 55, 5], [null, 85, 5]],
      );
      const k = (await t.app.inject({ method: 'GET', url: `${KEYS}/${id}`, headers: t.auth })).json();
      assert.equal(k.drift.tavily, 55);
      assert.equal(k.drift.pool, 5);
      const a = (await t.app.inject({ method: 'GET', url: `/api/v1/admin/accounts/${k.account_id}`, headers: t.auth })).json();
      assert.deepEqual([a.drift.tavily, a.drift.pool], [85, 5]);
      const flagged = (await t.app.inject({ method: 'GET', url: `${KEYS}?drift=true`, headers: t.auth })).json();
      assert.deepEqual(flagged.items.map((x: { id: number }) => x.id), [id]);

      // Another refresh with only pool traffic in between: nothing new, the finding stays until dismissed.
      for (let i = 0; i < 3; i++) await search(t, tok);
      const again = (await t.app.inject({ method: 'POST', url: `${KEYS}/refresh-quota`, headers: t.auth, payload: {} })).json();
      assert.deepEqual(again.drift, []);
      const dismissed = await t.app.inject({ method: 'PATCH', url: `${KEYS}/${id}`, headers: t.auth, payload: { drift: null } });
      assert.equal(dismissed.json().drift, null);
    }));

  test('import: `email => key` and `email,key` lines and a CSV account column group the keys', () =>
    up.withApp({}, async (t) => {
      const text = [
        '# my keys',
        'alice@example.com => tvly-dev-alice0000000001',
        'Alice@Example.com => tvly-dev-alice0000000002',
        'bob@example.org,tvly-dev-bob00000000000001',
        'tvly-dev-nobody000000001',
        'tvly-dev-twoonline000001 tvly-dev-twoonline000002 carol@example.com',
      ].join('\n');
      const r = await addKeys(t, text, '');
      assert.equal(r.added, 6);
      assert.equal(r.accounts, 2);
      assert.equal(r.items.filter((i) => i.account_name === 'alice@example.com').length, 2, 'the address is one account whatever its case');
      assert.equal(r.items.filter((i) => i.account_name === 'bob@example.org').length, 1);
      assert.equal(r.items.filter((i) => i.account_name === null).length, 3, 'a line with no address, or with two keys, names no account');

      const csv = 'key,label,account\ntvly-dev-csvrow0000000001,first,Team CSV\ntvly-dev-csvrow0000000002,second,Team CSV\n';
      const c = await t.app.inject({ method: 'POST', url: KEYS, headers: { ...t.auth, 'content-type': 'text/csv' }, payload: csv });
      assert.equal(c.statusCode, 201, c.body);
      assert.deepEqual(c.json().items.map((i: { account_name: string }) => i.account_name), ['Team CSV', 'Team CSV']);

      const accounts = (await t.app.inject({ method: 'GET', url: '/api/v1/admin/accounts', headers: t.auth })).json();
      assert.deepEqual(accounts.items.map((a: { name: string; keys: { total: number } }) => [a.name, a.keys.total]), [
        ['alice@example.com', 2],
        ['bob@example.org', 1],
        ['Team CSV', 2],
      ]);
    }));

  test('import: a line’s own account wins over ?account=, which takes the keys that name none; a key already in the pool keeps its account', () =>
    up.withApp({}, async (t) => {
      const first = await t.app.inject({ method: 'POST', url: `${KEYS}?account=old@example.com`, headers: { ...t.auth, 'content-type': 'text/plain' }, payload: 'tvly-dev-kept00000000001\n' });
      assert.equal(first.statusCode, 201, first.body);
      const text = ['alice@example.com => tvly-dev-wins00000000001', 'tvly-dev-query0000000001', 'tvly-dev-kept00000000001'].join('\n');
      const r = await t.app.inject({ method: 'POST', url: `${KEYS}?account=team@example.com`, headers: { ...t.auth, 'content-type': 'text/plain' }, payload: text });
      assert.equal(r.statusCode, 201, r.body);
      assert.deepEqual([r.json().added, r.json().duplicates], [2, 1]);
      const rows = await t.ctx.parts.database.db.selectFrom('tavily_keys').leftJoin('tavily_accounts as a', 'a.id', 'tavily_keys.account_id').select(['tavily_keys.key_hash', 'a.name']).execute();
      const hash = (k: string) => t.ctx.parts.cipher.hash(k);
      const nameOf = (k: string) => rows.find((x) => x.key_hash === hash(k))?.name ?? null;
      assert.equal(nameOf('tvly-dev-wins00000000001'), 'alice@example.com', 'the line names its account: it wins');
      assert.equal(nameOf('tvly-dev-query0000000001'), 'team@example.com', '?account= takes the keys that name none');
      assert.equal(nameOf('tvly-dev-kept00000000001'), 'old@example.com', 'a key already in the pool is a duplicate: its account is not changed by an import');

      // The same in JSON: a key's own "account" wins over the body's.
      const j = await t.app.inject({ method: 'POST', url: KEYS, headers: t.auth, payload: { account: 'team@example.com', keys: [{ key: 'tvly-dev-jsonown000000001', account: 'bob@example.org' }, 'tvly-dev-jsonbody00000001'] } });
      assert.equal(j.statusCode, 201, j.body);
      const after = await t.ctx.parts.database.db.selectFrom('tavily_keys').leftJoin('tavily_accounts as a', 'a.id', 'tavily_keys.account_id').select(['tavily_keys.key_hash', 'a.name']).execute();
      const nameNow = (k: string) => after.find((x) => x.key_hash === hash(k))?.name ?? null;
      assert.equal(nameNow('tvly-dev-jsonown000000001'), 'bob@example.org');
      assert.equal(nameNow('tvly-dev-jsonbody00000001'), 'team@example.com');
    }));

  test('keys with identical account figures are suggested as one account, and confirmed through the API', () =>
    up.withApp({}, async (t) => {
      const pair = ['tvly-dev-pairkey00000001', 'tvly-dev-pairkey00000002'];
      up.fake.addAccount('pair', { plan: 'Bootstrap', planLimit: 15000, planUsage: 321, keys: pair });
      // A free key with figures of its own, and a pair whose account has used nothing (no information).
      up.fake.addAccount('blank', { planLimit: 1000, planUsage: 0, keys: ['tvly-dev-blank000000001', 'tvly-dev-blank000000002'] });
      await addKeys(t, { keys: [...pair, 'tvly-dev-freekey00000001', 'tvly-dev-blank000000001', 'tvly-dev-blank000000002'] });
      assert.equal((await summary(t)).total_remaining, 2 * (15000 - 321) + (1000 - 0) * 2 + t.ctx.parts.pool.get(3)!.remaining!, 'before: counted once per key');
      // Figures read in one refresh.
      await t.app.inject({ method: 'POST', url: `${KEYS}/refresh-quota`, headers: t.auth, payload: {} });
      const s = (await t.app.inject({ method: 'GET', url: '/api/v1/admin/accounts/suggestions', headers: t.auth })).json();
      assert.equal(s.items.length, 1, JSON.stringify(s.items));
      assert.deepEqual(s.items[0].keys.map((k: { key_masked: string }) => k.key_masked.slice(-4)), ['0001', '0002']);
      assert.equal(s.items[0].plan_usage, 321);
      assert.equal(s.items[0].account_id, null);
      const made = await t.app.inject({ method: 'POST', url: '/api/v1/admin/accounts', headers: t.auth, payload: { name: 'Pair', key_ids: s.items[0].key_ids } });
      assert.equal(made.statusCode, 201, made.body);
      assert.equal(made.json().keys.total, 2);
      assert.equal(made.json().remaining, 15000 - 321);
      const after = (await t.app.inject({ method: 'GET', url: '/api/v1/admin/accounts/suggestions', headers: t.auth })).json();
      assert.deepEqual(after.items, []);
      assert.equal((await summary(t)).total_remaining, 15000 - 321 + 2000 + t.ctx.parts.pool.get(3)!.remaining!, 'after: the pair counts once');
      // The name is taken now.
      const dup = await t.app.inject({ method: 'POST', url: '/api/v1/admin/accounts', headers: t.auth, payload: { name: 'Pair' } });
      assert.equal(dup.statusCode, 409);
    }));

  test('admin API: assign, move, leave, rename and delete; bad input is a clear 4xx and changes nothing', () =>
    up.withApp({}, async (t) => {
      const added = await addKeys(t, { keys: ['tvly-dev-assign00000001', 'tvly-dev-assign00000002', 'tvly-dev-assign00000003'] }, '');
      const [a, b, c] = added.items.map((i) => i.id) as [number, number, number];
      const bulk = await t.app.inject({ method: 'POST', url: `${KEYS}/bulk`, headers: t.auth, payload: { action: 'assign', ids: [a, b], account: 'Ops' } });
      assert.equal(bulk.statusCode, 200, bulk.body);
      assert.equal(bulk.json().affected, 2);
      const ops = t.ctx.parts.pool.get(a)!.account!;
      assert.equal(t.ctx.parts.pool.get(b)!.account, ops, 'the pool holds one account object for both');
      const moved = await t.app.inject({ method: 'PATCH', url: `${KEYS}/${c}`, headers: t.auth, payload: { account_id: ops.id } });
      assert.equal(moved.json().account_name, 'Ops');
      const left = await t.app.inject({ method: 'PATCH', url: `${KEYS}/${a}`, headers: t.auth, payload: { account_id: null } });
      assert.equal(left.json().account_id, null);
      assert.equal(t.ctx.parts.pool.get(a)!.account, null);
      const none = (await t.app.inject({ method: 'GET', url: `${KEYS}?account_id=0`, headers: t.auth })).json();
      assert.deepEqual(none.items.map((k: { id: number }) => k.id), [a]);

      const bad = [
        [{ method: 'POST', url: `${KEYS}/bulk`, payload: { action: 'assign', ids: [a] } }, 400, /account_id/],
        [{ method: 'POST', url: `${KEYS}/bulk`, payload: { action: 'enable', ids: [a], account: 'x' } }, 400, /assign/],
        [{ method: 'PATCH', url: `${KEYS}/${a}`, payload: { account_id: 999999 } }, 404, /no account with id 999999/],
        [{ method: 'POST', url: '/api/v1/admin/accounts', payload: { name: '   ' } }, 400, /name/],
        [{ method: 'POST', url: '/api/v1/admin/accounts', payload: { name: 'New', key_ids: [a, 999998] } }, 404, /999998.*nothing was changed/],
        [{ method: 'POST', url: `/api/v1/admin/accounts/${ops.id}/keys`, payload: { ids: [] } }, 400, /ids/],
        [{ method: 'PATCH', url: `/api/v1/admin/accounts/${ops.id}`, payload: { name: 'x'.repeat(201) } }, 400, /name/],
      ] as const;
      for (const [req, status, message] of bad) {
        const res = await t.app.inject({ ...req, headers: t.auth } as never);
        assert.equal(res.statusCode, status, `${req.method} ${req.url}: ${res.body}`);
        assert.match(res.json().error.message, message);
      }
      assert.equal((await t.ctx.parts.repos.accounts.list({ limit: 10 })).total, 1, 'the refused create made nothing');
      assert.equal((await t.ctx.parts.repos.keys.getById(a))!.account_id, null);

      const renamed = await t.app.inject({ method: 'PATCH', url: `/api/v1/admin/accounts/${ops.id}`, headers: t.auth, payload: { name: 'Operations' } });
      assert.equal(renamed.json().name, 'Operations');
      assert.deepEqual(renamed.json().key_list.map((k: { id: number }) => k.id), [b, c]);
      const del = await t.app.inject({ method: 'DELETE', url: `/api/v1/admin/accounts/${ops.id}`, headers: t.auth });
      assert.equal(del.statusCode, 204);
      assert.equal((await t.ctx.parts.repos.keys.getById(b))!.account_id, null, 'its keys stay, in no account');
      assert.equal(t.ctx.parts.pool.get(b)!.account, null);
      assert.equal(t.ctx.parts.pool.size, 3);
    }));
});

const pg = dialects.find((d) => d.name === 'postgres')!;
if (pg.skip) test('Tavily accounts across two instances on PostgreSQL', { skip: pg.skip }, () => {});
else
  describe('Tavily accounts across two instances on PostgreSQL', () => {
    const up = fakeUpstream(pg);

    test('an account’s credits spent through both instances: both stop choosing its keys, and the next search goes to another account', async () => {
      const cluster = await startCluster(pg, 2, { tavilyBaseUrl: up.fake.url, flushIntervalMs: 200 });
      try {
        const [a, b] = cluster.instances as [TestApp, TestApp];
        const { team, other } = setUpTeam(up.fake, 'pg');
        const added = await addKeys(a, { keys: team, account: 'team' });
        const otherAdded = await addKeys(a, { keys: [other] });
        await a.app.inject({ method: 'PATCH', url: `${KEYS}/${otherAdded.items[0]!.id}`, headers: a.auth, payload: { enabled: false } });
        const tok = await token(a);
        await until(() => b.ctx.parts.pool.get(added.items[0]!.id)?.account?.remaining === 1000 && b.ctx.parts.tokens.authenticate(tok) !== null, 'B knows the keys, the account and the token');
        assert.equal((await summary(b)).total_remaining, 1000);
        await inBatches(1000, 10, async (i) => {
          const res = await search(i % 2 === 0 ? a : b, tok, `q${i}`);
          assert.equal(res.statusCode, 200, `search ${i}: ${res.body}`);
        });
        assert.equal(up.fake.account('team-pg').planUsage, 4000);
        assert.equal(up.fake.stats.refusedForCredits, 0);
        const ids = added.items.map((i) => i.id);
        await until(() => ids.every((id) => a.ctx.parts.pool.get(id)!.account!.remaining === 0 && b.ctx.parts.pool.get(id)!.account!.remaining === 0), 'both instances see the account spent');
        await a.app.inject({ method: 'PATCH', url: `${KEYS}/${otherAdded.items[0]!.id}`, headers: a.auth, payload: { enabled: true } });
        await until(() => b.ctx.parts.pool.get(otherAdded.items[0]!.id)?.enabled === true, 'B sees the other key enabled');
        for (const t of [a, b]) {
          const res = await search(t, tok, 'after');
          assert.equal(res.statusCode, 200, res.body);
        }
        assert.equal(up.fake.stats.requestsByKey.get(other), 2, 'both served by the other account’s key');
        await a.ctx.parts.outbox.flush();
        await b.ctx.parts.outbox.flush();
        const stored = await a.ctx.parts.database.db.selectFrom('tavily_accounts').select('remaining').where('name', '=', 'team').executeTakeFirstOrThrow();
        assert.equal(stored.remaining, 0, 'the database holds the account spent too');
      } finally {
        await cluster.close();
      }
    });
  });

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type TestApp, type TestCluster, keysAndToken, startCluster } from '../support/app.js';
import { dialects } from '../support/db.js';
import { FakeTavily } from '../support/fake-tavily.js';
import { until } from '../support/receiver.js';

const postgres = dialects.find((d) => d.name === 'postgres')!;

/** Waits until every instance knows the token (the first one's notice reached them). */
async function tokenEverywhere(cluster: TestCluster, id: number): Promise<void> {
  await until(() => cluster.instances.every((t) => t.ctx.parts.tokens.byId(id)), 'every instance to know the token');
}

/** Every instance heard the others' heartbeats (their figures count from then on). */
async function peersKnown(cluster: TestCluster): Promise<void> {
  const n = cluster.instances.length;
  await until(() => cluster.instances.every((t) => t.ctx.parts.instances.live() === n), 'every instance to hear the others');
}

async function burst(cluster: TestCluster, token: string, n: number): Promise<number[]> {
  const rs = await Promise.all(
    Array.from({ length: n }, (_, i) =>
      cluster.instances[i % cluster.instances.length]!.app.inject({ method: 'POST', url: '/search', headers: { authorization: `Bearer ${token}` }, payload: { query: `burst ${i}` } }),
    ),
  );
  return rs.map((r) => r.statusCode);
}

async function monthSpent(t: TestApp, cluster: TestCluster, id: number): Promise<number> {
  await Promise.all(cluster.instances.map((x) => x.ctx.parts.outbox.flush()));
  const row = await t.ctx.parts.database.db.selectFrom('client_tokens').select('month_spent').where('id', '=', id).executeTakeFirstOrThrow();
  return row.month_spent;
}

function clusterSuite(title: string, env: Record<string, string>, slack: number) {
  if (postgres.skip) return test(title, { skip: postgres.skip }, () => {});
  describe(title, () => {
    let fake: FakeTavily;
    let cluster: TestCluster;
    before(async () => {
      fake = await FakeTavily.start({ latencyMs: 30 });
      cluster = await startCluster(postgres, 2, { tavilyBaseUrl: fake.url, env });
      await peersKnown(cluster);
    });
    after(async () => {
      await cluster.close();
      await fake.close();
    });

    test(`200 searches at once through two instances against a budget of 100 spend at most ${100 + slack}`, async () => {
      const [a] = cluster.instances as [TestApp];
      const c = await keysAndToken(a, ['tvly-dev-budgetcluster1', 'tvly-dev-budgetcluster2', 'tvly-dev-budgetcluster3'], { name: 'shared', monthly_budget: 100 });
      const id = (await a.ctx.parts.repos.tokens.list(false))[0]!.id;
      await tokenEverywhere(cluster, id);
      const codes = await burst(cluster, c.token, 200);
      const served = codes.filter((x) => x === 200).length;
      assert.deepEqual([...new Set(codes)].sort(), [200, 432], 'served or refused for the budget, nothing else');
      assert.ok(served <= 100 + slack, `${served} served`);
      // A burst meets no settled spend while it is admitted: nothing counted twice, nothing refused that fits.
      assert.ok(served >= 100, `${served} served: what fits the budget is not refused`);
      const spent = await monthSpent(a, cluster, id);
      // Both instances' flushes were written (they update the same rows: in one lock order, no deadlock).
      assert.equal(spent, fake.totalCredits, cluster.instances.flatMap((x) => x.logs.lines.filter((l) => /"level":50/.test(l))).join('').slice(0, 2000));
      assert.ok(spent <= 100 + slack, `${spent} spent of 100`);
      for (const t of cluster.instances) assert.equal(t.ctx.parts.budget.held(id), 0, 'every hold settled');
      // A second wave, after the first was accounted everywhere, finds the rest (if any) and no more.
      await new Promise((r) => setTimeout(r, 100));
      const more = (await burst(cluster, c.token, 40)).filter((x) => x === 200).length;
      assert.ok(spent + more <= 100 + slack, `${spent} + ${more} served of 100`);
    });
  });
}

clusterSuite('a budget shared by two instances on PostgreSQL holds exactly (CLUSTER_BUDGET_SLACK=0)', {}, 0);
clusterSuite('with CLUSTER_BUDGET_SLACK=5 two instances overshoot by at most 5', { CLUSTER_BUDGET_SLACK: '5' }, 5);

/**
 * The gateway core on its own: no app, no HTTP door, no app.inject. A GatewayCore is built from
 * its parts (a pool, a token registry, a budget ledger, the outbox on a throwaway SQLite file),
 * and its `call` is made directly; upstream is the fake Tavily server. What a door adds (reading
 * the token, writing the answer) is tested with the doors.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { type DatabaseHandle, openDatabase } from '../../src/db/database.js';
import { LogRepository } from '../../src/db/repositories/logs.js';
import { BudgetLedger } from '../../src/gateway/budget.js';
import { chargeableCredits } from '../../src/gateway/credits.js';
import { Cancellation, GatewayCore, GatewayError, type Outcome } from '../../src/gateway/core.js';
import { ENDPOINTS, ENDPOINT_NAMES } from '../../src/gateway/endpoints.js';
import { ResearchRegistry } from '../../src/gateway/research.js';
import type { TokenRegistry, TokenState } from '../../src/gateway/tokens.js';
import { KeyStates } from '../../src/pool/key-states.js';
import { Outbox } from '../../src/pool/outbox.js';
import { KeyPool, type PoolEntry } from '../../src/pool/pool.js';
import { KEY_VERDICTS, verdictOf } from '../../src/tavily/classify.js';
import { TavilyClient } from '../../src/tavily/client.js';
import { tempDir } from '../support/db.js';
import { FakeTavily } from '../support/fake-tavily.js';
import { registry, tokenRow } from '../support/tokens.js';

const log = pino({ level: 'silent' });

interface Core {
  core: GatewayCore;
  pool: KeyPool;
  tokens: TokenRegistry;
  budget: BudgetLedger;
  outbox: Outbox;
  close(): Promise<void>;
}

/** Keys by text, with the credits each has left (the pool spends the most first). */
function entries(keys: Record<string, number>): PoolEntry[] {
  return Object.entries(keys).map(([plain, remaining], i) => ({
    id: i + 1,
    plain,
    masked: `${plain.slice(0, 9)}…`,
    health: 'active',
    enabled: true,
    remaining,
    lastUsed: 0,
    coolUntil: 0,
    accountId: null,
    accountRemaining: null,
  }));
}

describe('GatewayCore, called without HTTP', () => {
  let fake: FakeTavily;
  let database: DatabaseHandle;
  let dir: string;
  const made: Core[] = [];

  before(async () => {
    fake = await FakeTavily.start();
    dir = tempDir();
    database = await openDatabase({ kind: 'sqlite', file: path.join(dir, 'core.db') });
  });
  after(async () => {
    for (const c of made) await c.close();
    await database.close();
    await fake.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function build(keys: Record<string, number>, tokens: TokenRegistry, o: { maxAttempts?: number } = {}): Core {
    const pool = new KeyPool('most-remaining');
    pool.load(entries(keys));
    const budget = new BudgetLedger({ tokens, slack: 0, feed: null });
    // Never started: what the core queues stays in memory, where the test reads it.
    const outbox = new Outbox({ db: database.db, dialect: database.dialect, log, intervalMs: 3_600_000 });
    const tavily = new TavilyClient({ baseUrl: fake.url, maxBodyBytes: 10 * 1024 * 1024 });
    const core = new GatewayCore({
      config: { maxAttempts: o.maxAttempts ?? 5, failoverBudgetMs: 10_000 },
      log,
      pool,
      keyStates: new KeyStates(pool, outbox, log),
      tokens,
      budget,
      outbox,
      research: new ResearchRegistry(database.db, outbox, (hold) => budget.release(hold)),
      tavily,
      logs: new LogRepository(database.db, database.dialect),
      adminToken: 'admin-token-for-the-core-test',
    });
    const c: Core = {
      core,
      pool,
      tokens,
      budget,
      outbox,
      async close() {
        budget.close();
        pool.close();
        await tavily.close();
      },
    };
    made.push(c);
    return c;
  }

  const call = (c: Core, token: TokenState, endpoint: 'search' | 'extract', body: Record<string, unknown>): Promise<Outcome> =>
    c.core.call({ token, endpoint, body, headers: {}, signal: new Cancellation(), remote: '127.0.0.1' });

  async function refusal(p: Promise<Outcome>): Promise<{ status: number; message: string }> {
    try {
      await p;
    } catch (err) {
      assert.ok(err instanceof GatewayError, `a GatewayError, not ${String(err)}`);
      return { status: err.statusCode, message: err.message };
    }
    assert.fail('the call was served');
  }

  test('fails over in the pool’s order past a resting key, a failing key and a dead key, and serves from the next', async () => {
    fake.resetStats();
    const keys = { 'tvly-dev-ratelimit-core01': 400, 'tvly-dev-error5xx-core001': 300, 'tvly-dev-invalid-core001': 200, 'tvly-dev-good-core00001': 100 };
    const tokens = registry(tokenRow(1, null));
    const c = build(keys, tokens);
    const out = await call(c, tokens.byId(1)!, 'search', { query: 'where does a request go' });
    assert.equal(out.kind, 'answer');
    assert.equal(out.kind === 'answer' && out.status, 200);
    // Each key was tried once, most credits first, and the last one served.
    assert.deepEqual(
      Object.keys(keys).map((k) => fake.stats.requestsByKey.get(k) ?? 0),
      [1, 1, 1, 1],
    );
    assert.deepEqual([...fake.stats.creditsByKey.keys()], ['tvly-dev-good-core00001'], 'only the serving key was billed');
    // What each failure said about its key changed the pool at once.
    assert.ok(c.pool.get(1)!.coolUntil > Date.now(), 'the 429 key rests');
    assert.equal(c.pool.get(3)!.health, 'invalid', 'the 401 key is out');
    assert.equal(c.pool.get(2)!.health, 'active', 'a 5xx says nothing about the key');
    // The spend is counted against the token, and queued for the database (not written on the request's path).
    assert.equal(tokens.byId(1)!.spent, 1);
    assert.equal(c.outbox.pendingRows, 1);
  });

  test('gives up after MAX_ATTEMPTS keys with the last failure, and bills nothing', async () => {
    fake.resetStats();
    const tokens = registry(tokenRow(1, null));
    const c = build({ 'tvly-dev-error5xx-give01': 3, 'tvly-dev-error5xx-give02': 2, 'tvly-dev-good-give000001': 1 }, tokens, { maxAttempts: 2 });
    const r = await refusal(call(c, tokens.byId(1)!, 'search', { query: 'q' }));
    assert.equal(r.status, 503);
    assert.equal(r.message.match(/500 Internal Server Error/g)?.length, 2, 'it names the two failures');
    assert.equal(fake.stats.requestsByKey.get('tvly-dev-good-give000001') ?? 0, 0, 'the third key was not tried');
    assert.equal(fake.totalCredits, 0);
    assert.equal(tokens.byId(1)!.spent, 0);
  });

  test('admits in order: the token’s scopes (403), then its budget against the most the call can cost (432), then its RPM (429); a refused call reaches no key', async () => {
    fake.resetStats();
    const scoped = { ...tokenRow(1, null), endpoints: JSON.stringify(['search']) };
    const poor = tokenRow(2, 10, 9);
    const limited = { ...tokenRow(3, null), rpm_limit: 1 };
    const tokens = registry(scoped, poor, limited);
    const c = build({ 'tvly-dev-good-admit0001': 1000 }, tokens);

    const scope = await refusal(call(c, tokens.byId(1)!, 'extract', { urls: ['https://example.com'] }));
    assert.equal(scope.status, 403);
    assert.match(scope.message, /extract/);

    // 1 credit left: a basic search (1) fits, an advanced one (2) does not.
    const budget = await refusal(call(c, tokens.byId(2)!, 'search', { query: 'q', search_depth: 'advanced' }));
    assert.equal(budget.status, 432);
    assert.equal(fake.stats.requests.size, 0, 'nothing was forwarded');
    assert.equal((await call(c, tokens.byId(2)!, 'search', { query: 'q' })).kind, 'answer');

    assert.equal((await call(c, tokens.byId(3)!, 'search', { query: 'q' })).kind, 'answer');
    const rpm = await refusal(call(c, tokens.byId(3)!, 'search', { query: 'q' }));
    assert.equal(rpm.status, 429);
    assert.equal(fake.stats.requests.get('/search'), 2, 'only the two admitted calls reached Tavily');
  });

  test('settles each hold to the real cost: a call holds its most while it runs, and what it cost after', async () => {
    fake.resetStats();
    const tokens = registry(tokenRow(1, 100));
    const c = build({ 'tvly-dev-good-settle0001': 1000 }, tokens);
    const token = tokens.byId(1)!;
    // An extract of 10 URLs may cost 2 (1 per 5); the fake finds all 10 pages.
    const pending = call(c, token, 'extract', { urls: Array.from({ length: 10 }, (_, i) => `https://example.com/${i}`) });
    assert.equal(c.budget.held(1), 2, 'held before the answer');
    const out = await pending;
    assert.equal(out.kind, 'answer');
    assert.equal(c.budget.held(1), 0, 'nothing held after');
    assert.equal(tokens.byId(1)!.spent, fake.totalCredits, 'the token is charged what Tavily billed');
    assert.ok(fake.totalCredits > 0);
  });
});

describe('the tables the core reads', () => {
  test('classify: only what says something about the key fails over to another key', () => {
    const cases: [number, string][] = [
      [200, 'served'],
      [400, 'request'],
      [401, 'invalid'],
      [403, 'request'],
      [429, 'rate_limited'],
      [432, 'exhausted'],
      [433, 'exhausted'],
      [500, 'failure'],
      [503, 'failure'],
    ];
    for (const [status, verdict] of cases) assert.equal(verdictOf(status), verdict, String(status));
    assert.deepEqual([...KEY_VERDICTS].sort(), ['exhausted', 'invalid', 'rate_limited']);
  });

  test('credits: Tavily’s figure when it is believable, the published cost otherwise', () => {
    assert.deepEqual(chargeableCredits('search', { search_depth: 'advanced' }, { usage: { credits: 2 } }, 'full'), { credits: 2 });
    assert.deepEqual(chargeableCredits('search', { search_depth: 'advanced' }, {}, 'full'), { credits: 2 }, 'no figure: the published cost');
    assert.deepEqual(chargeableCredits('search', {}, { usage: { credits: 50 } }, 'full'), { credits: 1, rejected: 50 }, 'more than the endpoint can cost: not trusted');
    assert.deepEqual(chargeableCredits('search', {}, { usage: { credits: -1 } }, 'reported'), { credits: 0, rejected: -1 });
    assert.deepEqual(chargeableCredits('search', {}, { usage: { credits: 1 } }, 'none'), { credits: 0 });
  });

  test('endpoints: every endpoint’s published estimate is within the most it reserves', () => {
    const requests: Record<string, Record<string, unknown>[]> = {
      search: [{ query: 'q' }, { query: 'q', search_depth: 'advanced' }],
      extract: [{ urls: ['a', 'b', 'c', 'd', 'e', 'f'] }, { urls: 'a', extract_depth: 'advanced' }],
      crawl: [{ url: 'a', limit: 30 }, { url: 'a', limit: 30, instructions: 'x', extract_depth: 'advanced' }],
      map: [{ url: 'a', limit: 30 }, { url: 'a', limit: 30, instructions: 'x' }],
      research: [{ input: 'q', model: 'mini' }, { input: 'q', model: 'pro' }],
    };
    for (const name of ENDPOINT_NAMES) {
      const spec = ENDPOINTS[name];
      for (const req of requests[name] ?? [{}]) {
        // As many results as the request can bring back: one per URL for extract, up to the limit for crawl and map.
        const n = name === 'extract' ? (typeof req.urls === 'string' ? 1 : (req.urls as unknown[]).length) : 30;
        const results = Array.from({ length: n }, () => ({}));
        const estimate = spec.estimate(req, { results });
        assert.ok(estimate <= spec.max(req), `${name} ${JSON.stringify(req)}: ${estimate} > ${spec.max(req)}`);
        assert.ok(estimate >= 0);
      }
    }
    assert.equal(ENDPOINTS.search.max({ query: 'q', search_depth: 'advanced' }), 2);
    assert.equal(ENDPOINTS.extract.max({ urls: ['a', 'b', 'c', 'd', 'e', 'f'] }), 2);
  });
});

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { TavilyClient } from '../../src/tavily/client.js';
import { UpstreamError, parseRetryAfter } from '../../src/tavily/errors.js';
import { FakeTavily, defaultUsage } from '../support/fake-tavily.js';

async function failure(p: Promise<unknown>): Promise<UpstreamError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof UpstreamError, `expected UpstreamError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the call to fail');
}

describe('Tavily client /usage', () => {
  let fake: FakeTavily;
  let client: TavilyClient;
  before(async () => {
    fake = await FakeTavily.start();
    client = new TavilyClient({ baseUrl: fake.url });
  });
  after(async () => {
    await client.close();
    await fake.close();
  });

  test('sends the key as a Bearer header and parses the answer', async () => {
    const key = 'tvly-dev-goodkey000001';
    const r = await client.usage(key, 1000);
    assert.equal(r.key.usage, defaultUsage(key).key.usage);
    assert.equal(fake.stats.callsByKey.get(key), 1);
  });

  test('classifies each upstream failure', async () => {
    const cases: [string, string, number | null][] = [
      ['tvly-dev-invalid-000001', 'unauthorized', 401],
      ['tvly-dev-ratelimit-0001', 'rate_limited', 429],
      ['tvly-dev-plan432-00001', 'limit_exceeded', 432],
      ['tvly-dev-paygo433-0001', 'paygo_exceeded', 433],
      ['tvly-dev-error5xx-0001', 'server', 500],
      ['tvly-dev-malformed-001', 'malformed', 200],
    ];
    for (const [key, kind, status] of cases) {
      const err = await failure(client.usage(key, 1000));
      assert.equal(err.kind, kind, key);
      assert.equal(err.statusCode, status, key);
      assert.ok(!err.message.includes(key), 'the key never appears in an error');
    }
    const rl = await failure(client.usage('tvly-dev-ratelimit-0001', 1000));
    assert.equal(rl.retryAfterS, 60);
  });

  test('a hung call fails by timeout', async () => {
    const err = await failure(client.usage('tvly-dev-hang-00000001', 150));
    assert.equal(err.kind, 'timeout');
    assert.match(err.message, /timed out after 150 ms/);
  });

  test('a refused connection is a network error', async () => {
    const dead = new TavilyClient({ baseUrl: 'http://127.0.0.1:9' });
    const err = await failure(dead.usage('tvly-dev-goodkey000001', 1000));
    assert.equal(err.kind, 'network');
    await dead.close();
  });

  test('Retry-After as seconds or a date', () => {
    assert.equal(parseRetryAfter('30'), 30);
    assert.equal(parseRetryAfter(new Date(61_000).toUTCString(), 0), 61);
    assert.equal(parseRetryAfter('soon'), null);
    assert.equal(parseRetryAfter(undefined), null);
  });
});

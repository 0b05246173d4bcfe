/**
 * What a key failed (GET /logs?failed_key_id=), on a big request log: the query reads the rows of
 * its window and matches the failovers JSON, unlike key_id, which has an index. And GET /summary's
 * 7-day spend (a sum over the window's rows).
 * `node --import tsx bench/failed-key.ts [rows]` (SQLite; BENCH_DB sets the file; rows are
 * added up to the count, over 30 days, 200 keys, one row in 50 with a failover).
 */
import { sql } from 'kysely';
import { openDatabase } from '../src/db/database.js';
import { migrateToLatest } from '../src/db/migrations.js';
import { LogRepository } from '../src/db/repositories/logs.js';
import { burnWindowStart } from '../src/forecast.js';

const h = await openDatabase({ kind: 'sqlite', file: process.env.BENCH_DB ?? '/tmp/tavily-pool-failed-key.sqlite' });
await migrateToLatest(h.db, 'sqlite');
const N = Number(process.argv[2] ?? 1_000_000);
const have = Number((await sql<{ n: number }>`select count(*) as n from request_logs`.execute(h.db)).rows[0]!.n);
if (have < N) {
  // N rows over 30 days, 200 keys, one in 50 with a failover naming key (id % 200) + 1.
  await sql`
    with recursive s(i) as (select 1 union all select i + 1 from s where i < ${N - have})
    insert into request_logs (ts, token_id, key_id, endpoint, status, attempts, latency_ms, credits, request_id, error, requests, via, failovers)
    select strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-' || (i % 2592000) || ' seconds'), 1, (i % 200) + 1, 'search',
      case when i % 97 = 0 then 502 else 200 end, 1, 300, 1, 'r' || i, null, 1, 'rest',
      case when i % 50 = 0 then '[{"key_id":' || (((i * 7) % 200) + 1) || ',"status":429,"error":"rate limited"}]' else null end
    from s`.execute(h.db);
}
const logs = new LogRepository(h.db, 'sqlite');
const from = new Date(Date.now() - 30 * 86400_000).toISOString();
for (const key of [5, 150]) {
  const times: number[] = [];
  for (let r = 0; r < 3; r++) {
    const t0 = performance.now();
    const page = await logs.list({ failedKeyId: key, from, limit: 10 });
    times.push(Math.round(performance.now() - t0));
    if (r === 0) console.log(`key ${key}: ${page.rows.length} rows`);
  }
  const t0 = performance.now();
  await logs.list({ keyId: key, from, limit: 10 });
  console.log(`rows ${N}: failed_key_id ${times.join(', ')} ms; key_id (indexed) ${Math.round(performance.now() - t0)} ms`);
}
// A key that never failed: the whole window is read.
const t0 = performance.now();
const none = await logs.list({ failedKeyId: 9999, from, limit: 10 });
console.log(`never failed: ${none.rows.length} rows in ${Math.round(performance.now() - t0)} ms`);
// GET /summary's spend over the burn window (7 days): one sum over the rows of the window.
const s0 = performance.now();
const spent = await logs.creditsSince(burnWindowStart());
console.log(`summary's 7-day spend: ${spent} credits in ${Math.round(performance.now() - s0)} ms`);
await h.close();

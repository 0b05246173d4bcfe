/**
 * The README's screenshots, taken from a seeded demo pool so that they stay current:
 * `npm run screenshots` (needs Debian's chromium, and fonts-noto-cjk for the Chinese ones).
 * A fake Tavily on 127.0.0.1 answers for the demo keys; nothing leaves the machine.
 * Writes docs/screenshots/<page>-<light|dark>.png (and a few in Chinese).
 */
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { ADMIN_TOKEN, startTestApp } from '../test/support/app.js';
import { CHROMIUM_ARGS, chromiumPath } from '../test/support/browser.js';
import { dialects } from '../test/support/db.js';
import { FakeTavily } from '../test/support/fake-tavily.js';
import { Receiver } from '../test/support/receiver.js';

const OUT = path.resolve(process.argv[2] ?? 'docs/screenshots');
const DAY = 24 * 3600_000;

const browserPath = chromiumPath();
if (!browserPath) {
  console.error('chromium is not installed: apt-get install chromium');
  process.exit(1);
}

const fake = await FakeTavily.start({ latencyMs: 20 });
const t = await startTestApp(dialects[0]!, { tavilyBaseUrl: fake.url, env: { ALERT_POLL_MS: '50' } });
const rx = await Receiver.start();
const url = await t.app.listen({ port: 0, host: '127.0.0.1' });
const api = async (method: 'GET' | 'POST' | 'PATCH', p: string, payload?: object) => {
  const r = await t.app.inject({ method, url: `/api/v1/admin${p}`, headers: t.auth, payload });
  if (r.statusCode >= 400) throw new Error(`${method} ${p}: ${r.statusCode} ${r.body}`);
  return r.json();
};

try {
  // The pool: personal free keys with names, a team account of shared keys, a few broken ones.
  const people = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi', 'ivan', 'judy', 'mallory', 'niaj', 'olivia', 'peggy', 'rupert', 'sybil', 'trent', 'victor', 'walter', 'yvonne'];
  const free = people.flatMap((p, i) => [`${p} laptop,tvly-dev-demo${String(i * 2).padStart(8, '0')}`, `${p} ci,tvly-dev-demo${String(i * 2 + 1).padStart(8, '0')}`]);
  const team = Array.from({ length: 6 }, (_, i) => `tvly-prod-team${String(i).padStart(8, '0')}`);
  fake.addAccount('team', { plan: 'Project', planLimit: 15000, planUsage: 6210, keys: team });
  const broken = ['tvly-dev-invalid-demo001', 'tvly-dev-invalid-demo002', 'tvly-dev-spent-demo0001'];
  await t.app.inject({ method: 'POST', url: '/api/v1/admin/tavily-keys', headers: { ...t.auth, 'content-type': 'text/plain' }, payload: [...free, ...broken].join('\n') });
  await api('POST', '/tavily-keys', { keys: team.map((key, i) => ({ key, account: 'team@acme.io', label: `team key ${i + 1}` })) });
  await api('POST', '/tavily-keys/refresh-quota', {});

  const tokens = [
    (await api('POST', '/tokens', { name: 'research agent', monthly_budget: 5000, rpm_limit: 120 })).item,
    (await api('POST', '/tokens', { name: 'rag pipeline', monthly_budget: 400 })).item,
    (await api('POST', '/tokens', { name: 'cursor (mcp)', endpoints: ['search', 'extract'], caps: { advanced: false } })).item,
  ] as { id: number }[];

  // Traffic over two weeks: rows as the gateway writes them, with a failover now and then.
  const keys = (await api('GET', '/tavily-keys?status=active&limit=1000')).items as { id: number }[];
  const endpoints = ['search', 'search', 'search', 'extract', 'crawl', 'map'] as const;
  let n = 0;
  for (let h = 14 * 24; h >= 0; h--) {
    const perHour = Math.round(4 + 3 * Math.sin(h / 3.8) + (h % 24 < 8 ? 0 : 4));
    for (let i = 0; i < perHour; i++) {
      n++;
      const endpoint = endpoints[n % endpoints.length]!;
      const failed = n % 37 === 0;
      t.ctx.parts.outbox.record({
        ts: new Date(Date.now() - h * 3600_000 - i * 61_000).toISOString(),
        token_id: tokens[n % 3]!.id,
        key_id: keys[n % keys.length]!.id,
        endpoint,
        status: failed ? 502 : 200,
        attempts: n % 23 === 0 ? 2 : 1,
        latency_ms: 300 + ((n * 7919) % 900),
        credits: failed ? 0 : endpoint === 'search' && n % 4 === 0 ? 2 : 1,
        request_id: `demo-${n}`,
        error: failed ? 'tavily-pool could not serve this request: every key tried failed' : null,
        failovers: n % 23 === 0 ? [{ key_id: keys[(n + 1) % keys.length]!.id, status: 429, error: 'rate limited' }] : null,
      });
    }
  }
  await t.ctx.parts.outbox.flush();

  // Alerts: a sink, and the events the broken keys raised.
  await api('POST', '/alerts/sinks', { name: 'ops webhook', kind: 'webhook', url: rx.url('/demo') });
  await api('POST', '/tavily-keys/refresh-quota', {});
  await new Promise((r) => setTimeout(r, 500));
  await t.ctx.audit.flush();

  const browser = await chromium.launch({ executablePath: browserPath, args: CHROMIUM_ARGS });
  fs.mkdirSync(OUT, { recursive: true });
  const pages: [name: string, hash: string, ready: string][] = [
    ['overview', '#/overview', '.recharts-surface'],
    ['keys', '#/keys', 'tbody tr'],
    ['key', `#/keys/${keys[0]!.id}`, 'dl.figures'],
    ['accounts', '#/accounts', 'tbody tr'],
    ['tokens', '#/tokens', 'tbody tr'],
    ['logs', '#/logs', 'tbody tr'],
    ['alerts', '#/alerts', 'tbody tr'],
    ['audit', '#/audit', 'tbody tr'],
  ];
  for (const [lang, themes] of [['en', ['light', 'dark']], ['zh-CN', ['light']]] as const) {
    for (const theme of themes) {
      const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, locale: lang, timezoneId: 'UTC', colorScheme: theme, deviceScaleFactor: 1 });
      const page = await context.newPage();
      await page.goto(url);
      await page.evaluate(`sessionStorage.setItem('tavily-pool-admin-token', ${JSON.stringify(ADMIN_TOKEN)}); localStorage.setItem('tavily-pool-language', '${lang}')`);
      for (const [name, hash, ready] of pages) {
        if (lang !== 'en' && !['overview', 'keys', 'tokens'].includes(name)) continue;
        await page.goto(`${url}/${hash}`);
        await page.reload();
        await page.locator(ready).first().waitFor();
        await page.waitForTimeout(300);
        const file = path.join(OUT, `${name}-${lang === 'en' ? theme : lang}.png`);
        await page.screenshot({ path: file });
        console.log(`wrote ${path.relative(process.cwd(), file)}`);
      }
      await context.close();
    }
  }
  await browser.close();
} finally {
  await rx.close();
  await t.close();
  await fake.close();
}

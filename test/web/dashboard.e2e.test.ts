import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Browser, type Page, chromium } from 'playwright-core';
import { webDist } from '../../src/paths.js';
import { en } from '../../web/src/locales/en.js';
import { zhCN } from '../../web/src/locales/zh-CN.js';
import { ADMIN_TOKEN, type TestApp, startTestApp } from '../support/app.js';
import { CHROMIUM_ARGS, chromiumPath, englishWords, horizontalOverflow, untranslatedWords } from '../support/browser.js';
import { dialects } from '../support/db.js';
import { FakeTavily } from '../support/fake-tavily.js';
import { Receiver, until } from '../support/receiver.js';

const CHROMIUM = chromiumPath();
const BUILT = fs.existsSync(path.join(webDist(), 'index.html'));
const skip = !CHROMIUM ? 'chromium is not installed (apt-get install chromium): dashboard e2e skipped' : !BUILT ? 'the dashboard is not built (npm run build:web): e2e skipped' : false;
const SHOTS = path.resolve('test-results/screenshots');

const good = Array.from({ length: 40 }, (_, i) => `tvly-dev-e2egood${String(i).padStart(6, '0')}`);
const invalid = Array.from({ length: 5 }, (_, i) => `tvly-dev-invalid-e2e00${i}`);
const spent = Array.from({ length: 5 }, (_, i) => `tvly-dev-spent-e2e0000${i}`);
const num = (n: number) => new Intl.NumberFormat('en').format(n);

/** Names that stay as they are in every language: products, formats, protocols. */
const KEEP = ['tavily', 'pool', 'slack', 'mattermost', 'discord', 'telegram', 'webhook', 'json', 'csv', 'txt', 'mcp', 'readme', 'postgresql', 'url', 'rpm', 'utc', 'cidr', 'tvly', 'http', 'https', 'bot'];

describe('dashboard (Chromium)', { skip }, () => {
  let fake: FakeTavily;
  let t: TestApp;
  let browser: Browser;
  let page: Page;
  let url: string;
  const consoleErrors: string[] = [];
  /** How the next browser dialog (confirm, prompt) is answered. */
  let dialogAnswer: 'accept' | 'dismiss' = 'accept';
  /** Names this test gives things (token, sink, account names, labels): data, not the dashboard's words. */
  const data: string[] = [];
  const api = (method: 'GET' | 'POST' | 'PATCH', p: string, payload?: object) => t.app.inject({ method, url: `/api/v1/admin${p}`, headers: t.auth, payload });
  /** A client's request through the gateway with a client token. */
  const call = (token: string, body: object, endpoint = 'search') =>
    fetch(`${url}/${endpoint}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const go = async (link: string, heading: string | RegExp) => {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: link, exact: true }).click();
    await page.getByRole('heading', { name: heading, exact: true }).first().waitFor();
  };
  const shot = (name: string) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });

  before(async () => {
    fake = await FakeTavily.start({ latencyMs: 150 });
    t = await startTestApp(dialects[0]!, { tavilyBaseUrl: fake.url, env: { REFRESH_CONCURRENCY: '10', ALERT_POLL_MS: '50' } });
    url = await t.app.listen({ port: 0, host: '127.0.0.1' });
    browser = await chromium.launch({ executablePath: CHROMIUM!, args: CHROMIUM_ARGS });
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, permissions: ['clipboard-read', 'clipboard-write'], locale: 'en-US', timezoneId: 'Europe/Berlin' });
    page = await context.newPage();
    page.setDefaultTimeout(15_000);
    page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));
    page.on('pageerror', (e) => consoleErrors.push(e.message));
    page.on('dialog', (d) => void (dialogAnswer === 'accept' ? d.accept(d.type() === 'prompt' ? 'renamed pair' : undefined) : d.dismiss()));
    fs.mkdirSync(SHOTS, { recursive: true });
  });
  after(async () => {
    await browser?.close();
    await t?.close();
    await fake?.close();
  });

  test('a wrong token gets a clear message; the right one signs in; an empty pool gets a guide', async () => {
    const doc = await page.goto(url);
    // The dashboard runs under a strict Content-Security-Policy (no inline scripts or styles):
    // any violation would show as a console error, which the tests below refuse.
    const headers = doc!.headers();
    assert.match(headers['content-security-policy'] ?? '', /script-src 'self'/);
    assert.match(headers['content-security-policy'] ?? '', /frame-ancestors 'none'/);
    await page.getByLabel('Admin token').fill('not-the-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'That admin token is not right.' }).waitFor();
    await shot('sign-in');
    // The browser logs the deliberate 401 above as a failed load; every error after it counts.
    assert.ok(consoleErrors.every((e) => e.includes('401')), consoleErrors.join('\n'));
    consoleErrors.length = 0;
    await page.getByLabel('Admin token').fill(ADMIN_TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    // Nothing in the pool: three steps, none done, each with its link.
    const guide = page.getByRole('region', { name: 'Get started' });
    await guide.waitFor();
    assert.deepEqual(await guide.getByRole('link').allTextContents(), ['Add keys', 'Refresh', 'Create a token']);
    await page.getByText('Times are shown in your browser’s time zone (Europe/Berlin).').waitFor();
  });

  test('import 50 keys, refresh them with a live progress bar, and see every status', async () => {
    await go('Keys', 'Tavily keys');
    await page.getByLabel(/^Keys to import/).fill([...good, ...invalid, ...spent].join('\n'));
    await page.getByLabel('Check each new key with Tavily').uncheck();
    await page.getByRole('button', { name: 'Import' }).click();
    await page.getByRole('status', { name: 'Import result' }).filter({ hasText: 'Added 50, duplicates 0, rejected 0.' }).waitFor();
    await page.getByText('50 keys · page 1 of 1').waitFor();
    // Not checked yet: no time.
    assert.equal(await page.getByRole('table', { name: 'Keys' }).getByText('never').count(), 50);

    await page.getByRole('button', { name: 'Refresh quota' }).click();
    const progress = page.getByRole('progressbar');
    await progress.waitFor();
    // The run is followed while it goes: the bar shows a part done before the end.
    let seenPartial = false;
    for (let i = 0; i < 100 && !seenPartial; i++) {
      const v = Number(await progress.getAttribute('value'));
      if (v > 0 && v < 50) seenPartial = true;
      else await page.waitForTimeout(50);
    }
    assert.ok(seenPartial, 'the progress bar moved during the run');
    await page.getByRole('status', { name: 'Refresh result' }).filter({ hasText: 'Refreshed 45 of 50 keys' }).waitFor();
    assert.equal(await progress.getAttribute('value'), '50');

    const rows = page.getByRole('table', { name: 'Keys' }).getByRole('row');
    for (const [status, n] of [['invalid', 5], ['exhausted', 5], ['active', 40]] as const) {
      await page.getByLabel('Status').selectOption(status);
      // "5 keys" shows for invalid and exhausted alike: wait for this filter's own rows.
      await page.locator('tbody .badge', { hasText: status }).nth(n - 1).waitFor();
      await page.getByText(`${n} keys · page 1`).waitFor();
      assert.equal(await rows.count(), n + 1, `${status} rows`);
      assert.equal(await page.locator('tbody .badge', { hasText: status }).count(), n);
    }
    // A key that answered 401 was checked: its time shows, in the one format (Europe/Berlin here).
    await page.getByLabel('Status').selectOption('invalid');
    await page.locator('tbody .badge', { hasText: 'invalid' }).nth(4).waitFor();
    await page.getByText('5 keys · page 1').waitFor();
    const checked = await page.getByRole('table', { name: 'Keys' }).locator('tbody time').first();
    const at = (await checked.getAttribute('datetime'))!;
    assert.equal(await checked.textContent(), new Intl.DateTimeFormat('en', { dateStyle: 'medium', timeStyle: 'short', timeZone: 'Europe/Berlin' }).format(new Date(at)));
    await page.getByLabel('Status').selectOption('');
    await shot('keys');

    // Keys, refreshed, nothing spent yet: the forecast says so rather than "not at this rate";
    // the guide shows two steps done and the token still to make.
    await go('Overview', 'Overview');
    assert.equal(await page.getByTestId('forecast').textContent(), 'not while idle');
    await page.getByText('nothing was spent in the last 7 days, so there is no rate to forecast from').waitFor();
    const guide = page.getByRole('region', { name: 'Get started' });
    assert.deepEqual(await guide.getByRole('link').allTextContents(), ['Create a token']);
    assert.equal(await guide.getByText('done', { exact: true }).count(), 2);
    await go('Keys', 'Tavily keys');
  });

  test('a CSV keeps its names as labels; the result lists the duplicates; a cancelled bulk delete does nothing', async () => {
    const csv = `name,key\nlaptop,tvly-dev-e2eupload00x1\nrunner,tvly-dev-e2eupload00x2\nagain,${good[0]}\nbroken,tvly-short\n`;
    data.push('laptop', 'runner', 'relabelled');
    await page.getByLabel('Upload .txt or .csv').setInputFiles({ name: 'keys.csv', mimeType: 'text/csv', buffer: Buffer.from(csv) });
    await page.getByRole('button', { name: 'Import' }).click();
    const result = page.getByRole('status', { name: 'Import result' });
    await result.filter({ hasText: 'Added 2, duplicates 1, rejected 1.' }).waitFor();
    // Which input was the duplicate, masked, and why.
    await result.getByText(`: already in the pool`).waitFor();
    assert.match((await result.getByRole('listitem').first().textContent())!, new RegExp(`^tvly-dev-…${good[0]!.slice(-4)}: already in the pool$`));
    assert.match((await result.getByRole('group').filter({ hasText: 'Rejected' }).getByRole('listitem').textContent())!, /: too short to be a Tavily key$/);
    await page.getByText('52 keys · page 1 of 2').waitFor();

    // The search finds keys by their last characters; the labels came from the file.
    await page.getByLabel('Search').fill('00x');
    await page.getByText('2 keys · page 1 of 1').waitFor();
    const table = page.getByRole('table', { name: 'Keys' });
    await table.getByText('laptop').waitFor();
    await table.getByText('runner').waitFor();
    await page.getByLabel('Select all on this page').check();
    await page.getByText('2 selected').waitFor();
    // Cancelled at the confirm: nothing is deleted, and nothing says it was.
    dialogAnswer = 'dismiss';
    const deletes = (await t.ctx.parts.repos.audit.list({ action: 'keys.bulk', limit: 10 })).items.length;
    await page.getByRole('button', { name: 'Delete selected' }).click();
    await page.getByText('2 keys · page 1 of 1').waitFor();
    assert.equal(await page.getByRole('status').filter({ hasText: 'Done: deleted' }).count(), 0);
    assert.equal((await t.ctx.parts.repos.audit.list({ action: 'keys.bulk', limit: 10 })).items.length, deletes, 'no bulk change reached the server');
    await page.getByText('2 selected').waitFor();
    dialogAnswer = 'accept';
    await page.getByRole('button', { name: 'Delete selected' }).click();
    await page.getByRole('status').filter({ hasText: 'Done: deleted 2 keys.' }).waitFor();
    await page.getByText('No keys match.').waitFor();
    await page.getByLabel('Search').fill('');
    await page.getByText('50 keys · page 1 of 1').waitFor();
  });

  test('edit a key’s label with the keyboard, open its page: figures, usage by endpoint, its requests', async () => {
    const key = good[17]!;
    const id = (await api('GET', `/tavily-keys?q=${key.slice(-4)}`)).json().items[0].id as number;
    const masked = `tvly-dev-…${key.slice(-4)}`;
    await page.getByLabel('Search').fill(key.slice(-4));
    await page.getByText('1 key · page 1 of 1').waitFor();
    await page.getByRole('button', { name: `Edit the label of ${masked}` }).click();
    const input = page.getByLabel(`Label of ${masked}`, { exact: true });
    await input.fill('relabelled');
    // Escape cancels; Enter saves.
    await input.press('Escape');
    await page.getByLabel(`Label of ${masked}`, { exact: true }).waitFor({ state: 'detached' });
    assert.equal((await api('GET', `/tavily-keys/${id}`)).json().label, null, 'Escape saved nothing');
    await page.getByRole('button', { name: `Edit the label of ${masked}` }).click();
    await page.getByLabel(`Label of ${masked}`, { exact: true }).fill('relabelled');
    await page.getByLabel(`Label of ${masked}`, { exact: true }).press('Enter');
    await page.getByRole('table', { name: 'Keys' }).getByText('relabelled').waitFor();
    assert.equal((await api('GET', `/tavily-keys/${id}`)).json().label, 'relabelled');

    // A request through the key, so that its page has a row.
    const tok = (await api('POST', '/tokens', { name: 'detail probe' })).json().token as string;
    data.push('detail probe');
    await api('POST', '/tavily-keys/bulk', { action: 'disable', ids: (await api('GET', '/tavily-keys?limit=1000')).json().items.filter((k: { id: number }) => k.id !== id).map((k: { id: number }) => k.id) });
    assert.equal((await call(tok, { query: 'detail' })).status, 200);
    await api('POST', '/tavily-keys/bulk', { action: 'enable', ids: (await api('GET', '/tavily-keys?status=disabled&limit=1000')).json().items.map((k: { id: number }) => k.id) });

    await page.getByRole('link', { name: `Details of ${masked}` }).click();
    await page.getByRole('heading', { name: new RegExp(`${masked.replace('…', '.')}.*relabelled`) }).waitFor();
    const figures = page.getByRole('definition');
    assert.ok((await figures.count()) >= 10);
    await page.getByText('Researcher ·').waitFor();
    const usage = page.getByRole('table', { name: 'Usage by endpoint (as Tavily reported it)' });
    await usage.getByRole('cell', { name: 'search', exact: true }).waitFor();
    const recent = page.getByRole('table', { name: 'Recent requests' });
    await recent.getByRole('row').filter({ hasText: 'detail probe' }).waitFor();
    assert.match((await recent.getByRole('row').nth(1).textContent())!, /detail probe.*search.*200/);
    await page.getByText('Nothing failed on this key in the last 30 days.').waitFor();
    await shot('key-detail');
    await page.getByRole('link', { name: '← All keys' }).click();
    await page.getByRole('heading', { name: 'Tavily keys' }).waitFor();
    await page.getByLabel('Search').fill('');
  });

  test('disable a key from the table; the overview shows the figures', async () => {
    await page.getByLabel('Status').selectOption('active');
    const first = good.length;
    await page.getByText(`${first} keys · page 1`).waitFor();
    await page.getByRole('row').nth(1).getByRole('button', { name: /^Disable / }).click();
    await page.getByText(`${first - 1} keys · page 1`).waitFor();
    await page.getByLabel('Status').selectOption('');

    await go('Overview', 'Overview');
    await page.getByTestId('count-active').filter({ hasText: '39' }).waitFor();
    assert.equal(await page.getByTestId('count-disabled').textContent(), '1');
    assert.equal(await page.getByTestId('count-invalid').textContent(), '5');
    assert.equal(await page.getByTestId('count-exhausted').textContent(), '5');
    const summary = (await api('GET', '/summary')).json();
    assert.equal(await page.getByTestId('total-remaining').textContent(), num(summary.total_remaining));
  });

  test('create a scoped token, copy it and a snippet, use it, edit it, see its budget spent, revoke it, find it again', async () => {
    await go('Tokens', 'Client tokens');
    await page.getByText('No tokens yet').waitFor({ state: 'detached' }).catch(() => undefined);
    const form = page.getByRole('form', { name: 'Create token' });
    await form.getByLabel('Name').fill('e2e client');
    data.push('e2e client', 'e2e renamed');
    await form.getByLabel('Monthly budget (credits)').fill('500');
    await form.getByLabel('map', { exact: true }).uncheck();
    await form.getByRole('button', { name: 'Create token' }).click();
    const made = page.getByRole('status', { name: 'New token' });
    const token = (await made.getByTestId('new-token').textContent())!;
    assert.match(token, /^tp_/);
    await made.getByRole('button', { name: 'Copy', exact: true }).click();
    await made.getByRole('button', { name: 'Copied', exact: true }).waitFor();
    assert.equal(await page.evaluate<string>('navigator.clipboard.readText()'), token);
    // Snippets filled with this server's address and the token.
    const curl = await made.getByTestId('snippet-curl').textContent();
    assert.ok(curl!.includes(`${url}/search`) && curl!.includes(`Bearer ${token}`), curl!);
    // The tabs by keyboard: one tab stop, the arrows move between them.
    await made.getByRole('tab', { name: 'curl' }).focus();
    await page.keyboard.press('ArrowRight');
    await made.getByTestId('snippet-js').waitFor();
    assert.equal(await page.evaluate<string>('document.activeElement.textContent'), 'JavaScript (@tavily/core)');
    await page.keyboard.press('ArrowLeft');
    await page.keyboard.press('ArrowLeft');
    await made.getByTestId('snippet-vscode').waitFor();
    assert.equal(await made.locator('[role="tab"][tabindex="0"]').count(), 1);
    await made.getByRole('tab', { name: 'Python (tavily-python)' }).click();
    assert.match((await made.getByTestId('snippet-python').textContent())!, new RegExp(`api_key="${token}", api_base_url="${url}"`));
    await made.getByRole('tab', { name: 'Cursor (MCP, ~/.cursor/mcp.json)' }).click();
    const cursor = JSON.parse((await made.getByTestId('snippet-cursor').textContent())!);
    assert.deepEqual(cursor.mcpServers['tavily-pool'], { url: `${url}/mcp`, headers: { Authorization: `Bearer ${token}` } });
    await made.getByRole('button', { name: /^Copy the Cursor/ }).click();
    assert.equal(await page.evaluate<string>('navigator.clipboard.readText()'), JSON.stringify(cursor, null, 2));
    // .vscode/mcp.json is often committed: VS Code prompts for the token, which is never in the file.
    await made.getByRole('tab', { name: 'VS Code (MCP, .vscode/mcp.json)' }).click();
    const vscode = (await made.getByTestId('snippet-vscode').textContent())!;
    assert.ok(!vscode.includes(token) && !vscode.includes('tp_'), vscode);
    assert.equal(JSON.parse(vscode).servers['tavily-pool'].headers.Authorization, 'Bearer ${input:tavily-pool-token}');
    // Claude Desktop, through mcp-remote (stdio only), with the token in its env.
    await made.getByRole('tab', { name: 'Claude Desktop (MCP, claude_desktop_config.json)' }).click();
    const desktop = JSON.parse((await made.getByTestId('snippet-claude-desktop').textContent())!).mcpServers['tavily-pool'];
    assert.deepEqual(desktop, { command: 'npx', args: ['-y', 'mcp-remote', `${url}/mcp`, '--header', 'Authorization:${TAVILY_POOL_AUTH}'], env: { TAVILY_POOL_AUTH: `Bearer ${token}` } });
    // The JavaScript examples say they are ES modules.
    await made.getByRole('tab', { name: 'LangChain (@langchain/tavily)' }).click();
    assert.match((await made.getByTestId('snippet-langchain').textContent())!, /^\/\/ An ES module: save it as search\.mjs/);
    const item = (await api('GET', '/tokens')).json().items.find((x: { name: string }) => x.name === 'e2e client');
    assert.deepEqual(item.endpoints, ['search', 'extract', 'crawl', 'research', 'feedback']);

    const res = await call(token, { query: 'from the dashboard test', search_depth: 'advanced' });
    assert.equal(res.status, 200);
    const { request_id: requestId } = (await res.json()) as { request_id: string };

    await page.reload();
    const row = page.getByRole('table', { name: 'Tokens' }).getByRole('row', { name: /e2e client/ });
    await row.waitFor();
    await page.getByTestId(`spent-${item.id}`).filter({ hasText: '2 / 500' }).waitFor();
    assert.match((await row.textContent())!, /only search, extract, crawl, research, feedback/);
    assert.equal(await row.getByText('budget spent').count(), 0);

    // Edit: a new name, and a budget the month's spend has reached.
    await page.getByRole('button', { name: 'Edit e2e client' }).click();
    const edit = page.getByRole('form', { name: 'Edit e2e client' });
    await edit.getByLabel('Name').fill('e2e renamed');
    await edit.getByLabel('Monthly budget (credits)').fill('2');
    await edit.getByLabel('Refuse “advanced” depth').check();
    await edit.getByLabel('Most results (max_results, limit)').fill('10');
    await edit.getByLabel('Answer cache (seconds)').fill('600');
    await edit.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('status').filter({ hasText: 'Done: saved e2e renamed.' }).waitFor();
    const renamed = page.getByRole('table', { name: 'Tokens' }).getByRole('row', { name: /e2e renamed/ });
    await renamed.getByText('budget spent').waitFor();
    assert.equal(await renamed.getByRole('meter').getAttribute('aria-valuenow'), '2');
    const patched = (await api('GET', '/tokens')).json().items.find((x: { id: number }) => x.id === item.id);
    assert.equal(patched.monthly_budget, 2);
    assert.deepEqual(patched.endpoints, item.endpoints, 'the scopes were kept');
    assert.deepEqual(patched.caps, { max_results: 10, advanced: false });
    assert.equal(patched.cache_ttl_s, 600);
    assert.match((await renamed.textContent())!, /no advanced; ≤ 10 results; identical answers reused for 600 s/);
    // How to use an existing token: the snippets with its prefix.
    await page.getByRole('button', { name: 'How to use e2e renamed' }).click();
    assert.ok((await page.getByTestId('snippet-curl').textContent())!.includes(`Bearer ${item.token_prefix}`));
    await shot('tokens');

    await go('Logs', 'Request log');
    const logRow = page.getByRole('row').filter({ hasText: requestId });
    await logRow.waitFor();
    assert.match((await logRow.textContent())!, /e2e renamed.*tvly-dev-….*search.*200/);

    await go('Overview', 'Overview');
    await page.getByRole('img', { name: /^Credits spent per day \(last 14 UTC days\)\. .*: 3 credits$/ }).waitFor();
    await page.getByRole('img', { name: /^Requests per hour by outcome \(last 24 hours\)\. .*: 2 succeeded, 0 failed$/ }).waitFor();
    // Axes with readable ticks.
    assert.ok((await page.locator('.recharts-cartesian-axis-tick').count()) > 10);
    // ~19,000 credits at a few credits a week: said as such, not as a date a century away.
    assert.equal(await page.getByTestId('forecast').textContent(), 'not within a year');
    // No token used the cache yet.
    assert.equal(await page.getByTestId('cache-saved').textContent(), '0 credits');
    await page.getByText(/^no answer reused yet: give a token a cache TTL/).waitFor();
    await page.getByText(/^at the last 7 days’ rate of [\d.]+ credits a day$/).waitFor();
    // Keys and a token exist: no guide.
    assert.equal(await page.getByRole('region', { name: 'Get started' }).count(), 0);
    await shot('overview');

    // Revoking the token refuses it at once; it leaves the list, and the revoked filter shows it.
    await go('Tokens', 'Client tokens');
    await page.getByRole('button', { name: 'Revoke e2e renamed' }).click();
    await page.getByRole('status').filter({ hasText: 'Done: revoked e2e renamed.' }).waitFor();
    assert.equal(await page.getByRole('row', { name: /e2e renamed/ }).count(), 0);
    const refused = await call(token, { query: 'x' });
    assert.equal(refused.status, 401);
    await page.getByLabel('Show revoked tokens').check();
    await page.getByRole('row', { name: /e2e renamed/ }).getByText('revoked', { exact: true }).waitFor();
    await page.getByLabel('Show revoked tokens').uncheck();
  });

  test('logs: keys by mask and label, each failover with its key and answer, errors only, status class, live mode', async () => {
    const keys = (await api('GET', '/tavily-keys?status=active&limit=3')).json().items as { id: number; key_masked: string }[];
    const tokenId = (await api('GET', '/tokens')).json().items[0].id as number;
    // A request that needed three keys, as the gateway records it.
    t.ctx.parts.outbox.record({
      ts: new Date().toISOString(), token_id: tokenId, key_id: keys[0]!.id, endpoint: 'extract', status: 200, attempts: 3, latency_ms: 812, credits: 1, request_id: 'req-failover-e2e', error: null,
      failovers: [{ key_id: keys[1]!.id, status: 401, error: 'Unauthorized: missing or invalid API key.' }, { key_id: keys[2]!.id, status: null, error: 'timed out after 60000 ms' }],
    });
    await t.ctx.parts.outbox.flush();
    // And one the request's own fault (a query over Tavily's limit): an error row.
    const tok0 = (await api('POST', '/tokens', { name: 'error probe' })).json().token as string;
    data.push('error probe');
    assert.equal((await call(tok0, { query: 'x'.repeat(401) })).status, 400);
    await go('Logs', 'Request log');
    const row = page.getByRole('row').filter({ hasText: 'req-failover-e2e' });
    await row.waitFor();
    assert.ok((await row.textContent())!.includes(keys[0]!.key_masked), 'the key by its mask, not its id');
    await row.getByText('failed over from 2 keys').click();
    const attempts = row.getByRole('listitem');
    assert.match((await attempts.nth(0).textContent())!, new RegExp(`${keys[1]!.key_masked.replace('…', '.')}: 401 Unauthorized`));
    assert.match((await attempts.nth(1).textContent())!, /: no answer timed out/);
    await shot('logs');
    // The key that failed first: its page lists the request it failed over from.
    await attempts.nth(0).getByRole('link').click();
    const failed = page.getByRole('table', { name: 'What it failed (30 days)' });
    await failed.getByRole('row').filter({ hasText: 'req-failover-e2e' }).waitFor();
    await go('Logs', 'Request log');

    const table = page.getByRole('table', { name: 'Requests' });
    const statuses = async () => (await table.locator('tbody .status').allTextContents()).map(Number);
    await page.getByLabel('Errors only').check();
    await until(async () => (await statuses()).length > 0 && (await statuses()).every((s) => s >= 400), 'only errors listed');
    assert.equal(await page.getByLabel('Outcome').inputValue(), 'errors');
    await page.getByLabel('Outcome').selectOption('2xx');
    await until(async () => (await statuses()).length > 0 && (await statuses()).every((s) => s < 300), 'only successes listed');
    await page.getByLabel('Outcome').selectOption('5xx');
    await page.getByText('No requests match these filters.').waitFor();
    await page.getByLabel('Outcome').selectOption('');

    // Live: a new request appears without a reload.
    await page.getByLabel('Live').check();
    const tok = (await api('POST', '/tokens', { name: 'live probe' })).json().token as string;
    data.push('live probe');
    assert.equal((await call(tok, { query: 'live' })).status, 200);
    await table.getByRole('row').filter({ hasText: 'live probe' }).waitFor({ timeout: 10_000 });
    await page.getByLabel('Live').uncheck();
  });

  test('keys that look like one account are suggested on the Keys page, confirmed there, and counted once', async () => {
    const pair = ['tvly-dev-e2epair00000001', 'tvly-dev-e2epair00000002'];
    fake.addAccount('e2e-pair', { plan: 'Bootstrap', planLimit: 15000, planUsage: 4321, keys: pair });
    const total = async () => (await api('GET', '/summary')).json().total_remaining as number;
    const before = await total();
    const added = await api('POST', '/tavily-keys?validate=true', { keys: pair });
    const ids = added.json().items.map((i: { id: number }) => i.id);
    await api('POST', '/tavily-keys/refresh-quota', { ids });
    assert.equal(await total(), before + 2 * (15000 - 4321), 'before: each key counts its account’s room');

    await go('Keys', 'Tavily keys');
    const panel = page.getByRole('region', { name: 'Probably one account' });
    await panel.waitFor();
    assert.equal(await panel.getByRole('listitem').count(), 1);
    await panel.getByLabel('Name').fill('E2E pair');
    data.push('E2E pair', 'renamed pair');
    await shot('keys-suggestion');
    await panel.getByRole('button', { name: 'Confirm as one account' }).click();
    await page.getByRole('status').filter({ hasText: 'Done: made the account E2E pair of 2 keys.' }).waitFor();
    await panel.waitFor({ state: 'detached' });

    const accounts = (await api('GET', '/accounts')).json();
    const made = accounts.items.find((a: { name: string }) => a.name === 'E2E pair');
    assert.equal(made.keys.total, 2);
    assert.equal(await total(), before + (15000 - 4321), 'after: the account counts once');

    await page.getByLabel('Account', { exact: true }).selectOption({ label: 'E2E pair' });
    await page.getByText('2 keys · page 1 of 1').waitFor();
    assert.equal(await page.getByRole('table', { name: 'Keys' }).getByRole('cell', { name: 'E2E pair', exact: true }).count(), 2);
    await page.getByLabel('Account', { exact: true }).selectOption('');

    await go('Accounts', 'Accounts');
    assert.equal(await page.getByTestId(`account-remaining-${made.id}`).textContent(), num(15000 - 4321));
    // No restart seen yet: its renewal is the 1st of next month (UTC), said to be assumed.
    const firstOfNext = new Date(Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth() + 1, 1));
    const renews = (await page.getByTestId(`account-renews-${made.id}`).textContent())!;
    assert.match(renews, /^renews .+\? \(the 1st assumed: no restart seen yet\)$/);
    assert.ok(renews.includes(String(firstOfNext.getUTCFullYear())), renews);
    // Rename (the prompt answers "renamed pair").
    await page.getByRole('button', { name: 'Rename E2E pair' }).click();
    await page.getByRole('status').filter({ hasText: 'Done: renamed E2E pair to renamed pair.' }).waitFor();
    await page.getByRole('link', { name: 'renamed pair' }).waitFor();
    await shot('accounts');
  });

  test('add a webhook sink, send it a test, edit it in the browser, and see an event delivered', async () => {
    const rx = await Receiver.start();
    try {
      await go('Alerts', 'Alerts');
      data.push('ops hook', 'ops pager');
      const form = page.getByRole('form', { name: 'Add a sink' });
      await form.getByLabel('Name').fill('ops hook');
      await form.getByLabel('URL').fill(rx.url('/e2e'));
      await form.getByLabel('Few active keys').uncheck();
      await form.getByRole('button', { name: 'Add sink' }).click();
      await page.getByRole('status', { name: 'Signing secret' }).waitFor();
      const secret = await page.getByTestId('sink-secret').textContent();
      assert.match(secret ?? '', /^whsec_/);
      const sinks = page.getByRole('table', { name: 'Sinks' });
      await sinks.getByRole('row', { name: /ops hook/ }).waitFor();
      assert.match((await sinks.getByRole('row', { name: /ops hook/ }).textContent()) ?? '', /all but Few active keys/);

      await page.getByRole('button', { name: 'Send a test to ops hook' }).click();
      await page.getByRole('status').filter({ hasText: 'Test sent to “ops hook”: the receiver answered 200' }).waitFor();
      assert.equal(JSON.parse(rx.requests.at(-1)!.body).events[0].type, 'test');

      // Edit: its name and events (the URL left blank keeps the stored one).
      await page.getByRole('button', { name: 'Edit ops hook' }).click();
      const edit = page.getByRole('form', { name: 'Edit ops hook' });
      await edit.getByLabel('Name').fill('ops pager');
      await edit.getByLabel('Few active keys').check();
      await edit.getByLabel('Keys active again').uncheck();
      await edit.getByRole('button', { name: 'Save' }).click();
      await page.getByRole('status').filter({ hasText: 'Saved “ops pager”.' }).waitFor();
      assert.match((await sinks.getByRole('row', { name: /ops pager/ }).textContent()) ?? '', /all but Keys active again/);
      const stored = (await api('GET', '/alerts/sinks')).json().items[0];
      assert.equal(stored.name, 'ops pager');
      assert.ok(!stored.events.includes('key.active') && stored.events.includes('pool.keys_low'));
      await page.getByRole('button', { name: 'Send a test to ops pager' }).click();
      await page.getByRole('status').filter({ hasText: 'Test sent to “ops pager”' }).waitFor();
      // Disable and enable it again; a second sink removed, after a cancelled confirm that removed nothing.
      const pagerRow = sinks.getByRole('row', { name: /ops pager/ });
      await page.getByRole('button', { name: 'Disable ops pager' }).click();
      await pagerRow.getByRole('cell', { name: 'disabled', exact: true }).waitFor();
      assert.equal((await api('GET', '/alerts/sinks')).json().items[0].enabled, false);
      await page.getByRole('button', { name: 'Enable ops pager' }).click();
      await pagerRow.getByRole('cell', { name: 'enabled', exact: true }).waitFor();
      await api('POST', '/alerts/sinks', { name: 'spare hook', kind: 'slack', url: rx.url('/spare') });
      data.push('spare hook');
      await page.reload();
      await sinks.getByRole('row', { name: /spare hook/ }).waitFor();
      dialogAnswer = 'dismiss';
      await page.getByRole('button', { name: 'Remove spare hook' }).click();
      assert.equal((await api('GET', '/alerts/sinks')).json().items.length, 2, 'a cancelled confirm removes nothing');
      assert.equal(await page.getByRole('status').filter({ hasText: 'Removed' }).count(), 0);
      dialogAnswer = 'accept';
      await page.getByRole('button', { name: 'Remove spare hook' }).click();
      await page.getByRole('status').filter({ hasText: 'Removed “spare hook”.' }).waitFor();
      await sinks.getByRole('row', { name: /spare hook/ }).waitFor({ state: 'detached' });

      // A key found invalid: one event, delivered to the sink, listed with its delivery.
      await api('POST', '/tavily-keys', { keys: ['tvly-dev-invalid-e2ealert1'] });
      await api('POST', '/tavily-keys/refresh-quota', {});
      await until(() => rx.acknowledged.length >= 3, 'the event delivered to the receiver');
      await go('Overview', 'Overview');
      await go('Alerts', 'Alerts');
      const events = page.getByRole('table', { name: 'Events' });
      await events.getByText('1 key became invalid').waitFor();
      await events.getByText(/ops pager: delivered/).first().waitFor();
      await shot('alerts');

      // Rules: a bad value is refused with the API's words, a good one saved.
      const rules = page.getByRole('form', { name: 'Alert rules' });
      await rules.getByLabel('Token budget at (%)').fill('80, 150');
      await rules.getByRole('button', { name: 'Save rules' }).click();
      await page.getByRole('alert').filter({ hasText: 'token_budget_percents[1]' }).waitFor();
      // The browser logs the deliberate 400 as a failed load; nothing else may be there.
      assert.ok(consoleErrors.every((e) => e.includes('400')), consoleErrors.join('\n'));
      consoleErrors.length = 0;
      await rules.getByLabel('Token budget at (%)').fill('50, 100');
      await rules.getByRole('button', { name: 'Save rules' }).click();
      await page.getByRole('status').filter({ hasText: 'Saved' }).waitFor();
      const saved = (await api('GET', '/alerts/rules')).json();
      assert.deepEqual(saved.rules.token_budget_percents, [50, 100]);
    } finally {
      await rx.close();
    }
  });

  test('a scoped token shows what it may do, and its refusals are one click away', async () => {
    const made = await api('POST', '/tokens', { name: 'narrow', endpoints: ['search'], caps: { advanced: false } });
    data.push('narrow');
    const { token, item } = made.json() as { token: string; item: { id: number } };
    const refused = await call(token, { urls: ['https://example.com'] }, 'extract');
    assert.equal(refused.status, 403);
    await t.ctx.parts.outbox.flush();
    await go('Tokens', 'Client tokens');
    const row = page.getByRole('table', { name: 'Tokens' }).getByRole('row', { name: /narrow/ });
    await row.waitFor();
    assert.match((await row.textContent()) ?? '', /only search; no advanced/);
    await page.getByRole('link', { name: 'Refusals of narrow' }).click();
    const logRow = page.getByRole('table', { name: 'Requests' }).getByRole('row').filter({ hasText: 'may not use extract' });
    await logRow.waitFor();
    assert.match((await logRow.textContent()) ?? '', /narrow.*extract.*403/);
    assert.equal(await page.getByLabel('Exact status').inputValue(), '403');
    assert.equal(await page.getByLabel('Token').inputValue(), String(item.id));
  });

  test('the audit page lists who changed what, filtered by family', async () => {
    await t.ctx.audit.flush();
    await go('Audit', 'Audit log');
    const table = page.getByRole('table', { name: 'Audit log' });
    await table.getByRole('cell', { name: 'keys.add', exact: true }).first().waitFor();
    await page.getByLabel('Show').selectOption('tokens');
    await table.getByRole('cell', { name: 'tokens.create', exact: true }).first().waitFor();
    // The previous page's rows may stay a moment while the filtered one replaces them.
    await table.getByRole('cell', { name: 'keys.add', exact: true }).first().waitFor({ state: 'detached', timeout: 5000 });
    assert.equal(await table.getByRole('cell', { name: 'keys.add', exact: true }).count(), 0);
    await page.getByLabel('Show').selectOption('admin');
    const refused = table.getByRole('row', { name: /admin\.signin_failed/ });
    await refused.waitFor();
    assert.match((await refused.textContent()) ?? '', /attempts 1.*refused/);
    await page.getByLabel('Show').selectOption('');
    await shot('audit');
  });

  test('dark mode follows the system, and the toggle overrides it across reloads', async () => {
    const background = () => page.evaluate<string>('getComputedStyle(document.body).backgroundColor');
    const theme = () => page.evaluate<string>('document.documentElement.dataset.theme');
    await go('Overview', 'Overview');
    await page.emulateMedia({ colorScheme: 'light' });
    await page.reload();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    assert.equal(await background(), 'rgb(247, 248, 250)');
    await page.emulateMedia({ colorScheme: 'dark' });
    // The system changed while the page was open: it follows.
    await until(async () => (await theme()) === 'dark', 'the page follows the system to dark');
    assert.equal(await background(), 'rgb(16, 20, 24)');
    await shot('overview-dark');
    // The toggle wins over the system, and is remembered.
    await page.getByLabel('Theme').selectOption('light');
    assert.equal(await background(), 'rgb(247, 248, 250)');
    await page.reload();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    assert.equal(await background(), 'rgb(247, 248, 250)', 'light, though the system is dark');
    await page.getByLabel('Theme').selectOption('system');
    assert.equal(await background(), 'rgb(16, 20, 24)');
    await page.emulateMedia({ colorScheme: 'light' });
  });

  /** Every page, with what makes it show its content. */
  const PAGES: [name: string, hash: string, ready: string][] = [
    ['overview', '#/overview', '.recharts-surface'],
    ['keys', '#/keys', 'tbody tr'],
    ['accounts', '#/accounts', 'tbody tr'],
    ['tokens', '#/tokens', 'tbody tr'],
    ['logs', '#/logs', 'tbody tr'],
    ['alerts', '#/alerts', 'tbody tr'],
    ['audit', '#/audit', 'tbody tr'],
  ];
  /** Every page, then a key's page, each shown with its content: `check` looks at it. */
  const eachPage = async (check: (name: string) => Promise<void>) => {
    const keyId = (await api('GET', '/tavily-keys?limit=1')).json().items[0].id as number;
    for (const [name, hash, ready] of [...PAGES, ['key page', `#/keys/${keyId}`, 'a[href^="#/logs?key_id="]'] as const]) {
      await page.goto(`${url}/${hash}`);
      await page.locator(ready).first().waitFor();
      await check(name);
    }
  };

  /** Back to English whatever happened (a failed language test must not fail the tests after it). */
  const english = async () => {
    await page.evaluate("localStorage.setItem('tavily-pool-language', 'en')");
    await page.goto(`${url}/#/keys`);
    await page.reload();
    await page.getByRole('heading', { name: 'Tavily keys' }).waitFor();
  };

  test('in Chinese, no page shows a word of the English catalogue; the choice is kept', async (ctx) => {
    ctx.after(english);
    const words = englishWords(en, KEEP);
    await page.getByLabel('Language').selectOption('zh-CN');
    await page.getByRole('heading', { name: '概览' }).waitFor();
    assert.equal(await page.evaluate<string>('document.documentElement.lang'), 'zh-CN');
    // The navigation in Chinese leads to each page.
    await page.getByRole('navigation', { name: zhCN.app.mainNav }).getByRole('link', { name: zhCN.nav.tokens, exact: true }).click();
    await page.getByRole('heading', { name: zhCN.tokens.title }).waitFor();
    const problems: string[] = [];
    await eachPage(async (name) => {
      const left = await untranslatedWords(page, words, data);
      if (left.length) problems.push(`${name}: ${left.join(', ')}`);
      await shot(`zh-${name.replace(' ', '-')}`);
    });
    assert.deepEqual(problems, [], 'English words on Chinese pages');
    // Plurals and numbers in Chinese.
    await page.goto(`${url}/#/keys`);
    await page.getByText(/^共 \d+ 个密钥 · 第 1\/\d+ 页$/).waitFor();
    // Remembered across a reload; back to English.
    await page.reload();
    await page.getByRole('heading', { name: 'Tavily 密钥' }).waitFor();
    await page.getByLabel('语言').selectOption('en');
    await page.getByRole('heading', { name: 'Tavily keys' }).waitFor();
  });

  test('the checker finds an English word left on a Chinese page', async (ctx) => {
    ctx.after(english);
    // The language check above must be able to fail: a page with one English label fails it.
    const words = englishWords(en, KEEP);
    await page.getByLabel('Language').selectOption('zh-CN');
    await page.getByRole('heading', { name: 'Tavily 密钥' }).waitFor();
    assert.deepEqual(await untranslatedWords(page, words, data), []);
    await page.evaluate("document.querySelector('h1').append(' Remaining')");
    assert.deepEqual(await untranslatedWords(page, words, data, false), ['Remaining']);
    await page.getByLabel('语言').selectOption('en');
    await page.getByRole('heading', { name: 'Tavily keys' }).waitFor();
  });

  test('the keyboard reaches everything: skip link, navigation, visible focus', async () => {
    await page.goto(`${url}/#/keys`);
    await page.getByRole('heading', { name: 'Tavily keys' }).waitFor();
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate<boolean>("document.activeElement === document.querySelector('a.skip')"), true);
    await page.keyboard.press('Enter');
    assert.equal(await page.evaluate<string>('document.activeElement?.id'), 'main');
    // The page stays (the skip link is not a route).
    assert.equal(await page.evaluate<string>('location.hash'), '#/keys');
    await page.getByRole('heading', { name: 'Tavily keys' }).waitFor();
    // The next stop is the page's first control, with a visible outline.
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate<boolean>("document.activeElement.closest('main') !== null && document.activeElement.matches(':focus-visible')"), true);
    const outline = await page.evaluate<string>('getComputedStyle(document.activeElement).outlineStyle');
    assert.notEqual(outline, 'none');
    // The navigation by keyboard alone.
    await page.getByRole('link', { name: 'Tokens', exact: true }).focus();
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Client tokens' }).waitFor();
  });

  test('390 px wide: no page scrolls sideways', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    const wide: string[] = [];
    await eachPage(async (name) => {
      const over = await horizontalOverflow(page);
      if (over > 0) wide.push(`${name}: ${over}px`);
      await shot(`narrow-${name.replace(' ', '-')}`);
    });
    assert.deepEqual(wide, []);
    // The check can fail: a wide element makes it.
    await page.evaluate("(() => { const d = document.createElement('div'); d.id = 'too-wide'; d.style.width = '600px'; d.textContent = 'x'; document.body.append(d); })()");
    assert.ok((await horizontalOverflow(page)) > 0);
    await page.evaluate("document.getElementById('too-wide').remove()");
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  test('10,000 keys: the Keys page’s first paint, measured (reported, not asserted)', async () => {
    const keys = Array.from({ length: 10_000 }, (_, i) => `tvly-dev-e2emany${String(i).padStart(8, '0')}`);
    assert.equal((await api('POST', '/tavily-keys', { keys })).statusCode, 201);
    await page.goto(`${url}/#/overview`);
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    const runs: number[] = [];
    for (let i = 0; i < 3; i++) {
      // A fresh load of the page (no cached data): from navigation to the first rows painted.
      await page.goto('about:blank');
      const t0 = Date.now();
      await page.goto(`${url}/#/keys`);
      await page.getByText(/^10,0\d\d keys · page 1 of \d+$/).waitFor();
      await page.locator('tbody tr').nth(49).waitFor();
      runs.push(Date.now() - t0);
    }
    const paint = await page.evaluate<[string, number][]>("performance.getEntriesByType('paint').map((e) => [e.name, Math.round(e.startTime)])");
    const report = { keys: 10_000 + 50, first_paint_of_keys_page_ms: runs, browser_paint_entries: paint };
    fs.writeFileSync(path.join(SHOTS, '..', 'keys-first-paint.json'), JSON.stringify(report, null, 2));
    console.log(`# Keys page with ${report.keys} keys: rows painted ${runs.join(', ')} ms after navigation (${JSON.stringify(paint)})`);
    assert.equal(runs.length, 3);
  });

  test('nothing went wrong in the console; sign out', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('Admin token').waitFor();
    assert.deepEqual(consoleErrors, []);
  });
});

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Browser, type Page, chromium } from 'playwright-core';
import { webDist } from '../../src/paths.js';
import { ADMIN_TOKEN, type TestApp, startTestApp } from '../support/app.js';
import { dialects } from '../support/db.js';
import { FakeTavily } from '../support/fake-tavily.js';
import { Receiver, until } from '../support/receiver.js';

/** Debian's chromium, never a downloaded browser. */
function chromiumPath(): string | null {
  try {
    return execFileSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}

const CHROMIUM = chromiumPath();
const BUILT = fs.existsSync(path.join(webDist(), 'index.html'));
const skip = !CHROMIUM ? 'chromium is not installed (apt-get install chromium): dashboard e2e skipped' : !BUILT ? 'the dashboard is not built (npm run build:web): e2e skipped' : false;
const SHOTS = path.resolve('test-results/screenshots');

const good = Array.from({ length: 40 }, (_, i) => `tvly-dev-e2egood${String(i).padStart(6, '0')}`);
const invalid = Array.from({ length: 5 }, (_, i) => `tvly-dev-invalid-e2e00${i}`);
const spent = Array.from({ length: 5 }, (_, i) => `tvly-dev-spent-e2e0000${i}`);

describe('dashboard (Chromium)', { skip }, () => {
  let fake: FakeTavily;
  let t: TestApp;
  let browser: Browser;
  let page: Page;
  let url: string;
  const consoleErrors: string[] = [];
  /** How the next browser dialog (confirm) is answered. */
  let dialogAnswer: 'accept' | 'dismiss' = 'accept';

  before(async () => {
    fake = await FakeTavily.start({ latencyMs: 150 });
    t = await startTestApp(dialects[0]!, { tavilyBaseUrl: fake.url, env: { REFRESH_CONCURRENCY: '10', ALERT_POLL_MS: '50' } });
    url = await t.app.listen({ port: 0, host: '127.0.0.1' });
    browser = await chromium.launch({
      executablePath: CHROMIUM!,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
    });
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, permissions: ['clipboard-read', 'clipboard-write'] });
    page = await context.newPage();
    page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));
    page.on('pageerror', (e) => consoleErrors.push(e.message));
    page.on('dialog', (d) => void (dialogAnswer === 'accept' ? d.accept() : d.dismiss()));
    fs.mkdirSync(SHOTS, { recursive: true });
  });
  after(async () => {
    await browser?.close();
    await t?.close();
    await fake?.close();
  });

  test('a wrong token gets a clear message; the right one signs in', async () => {
    const doc = await page.goto(url);
    // The dashboard runs under a strict Content-Security-Policy (no inline scripts or styles):
    // any violation would show as a console error, which the tests below refuse.
    const headers = doc!.headers();
    assert.match(headers['content-security-policy'] ?? '', /script-src 'self'/);
    assert.match(headers['content-security-policy'] ?? '', /frame-ancestors 'none'/);
    await page.getByLabel('Admin token').fill('not-the-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'That admin token is not right.' }).waitFor();
    await page.screenshot({ path: path.join(SHOTS, 'sign-in.png') });
    // The browser logs the deliberate 401 above as a failed load; every error after it counts.
    assert.ok(consoleErrors.every((e) => e.includes('401')), consoleErrors.join('\n'));
    consoleErrors.length = 0;
    await page.getByLabel('Admin token').fill(ADMIN_TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
  });

  test('import 50 keys, refresh them with a live progress bar, and see every status', async () => {
    await page.getByRole('link', { name: 'Keys' }).click();
    await page.getByRole('heading', { name: 'Tavily keys' }).waitFor();
    await page.getByLabel('Keys to import (any text: every tvly-… token is taken)').fill([...good, ...invalid, ...spent].join('\n'));
    await page.getByLabel('Check each new key with Tavily').uncheck();
    await page.getByRole('button', { name: 'Import' }).click();
    await page.getByRole('status', { name: 'Import result' }).filter({ hasText: 'Added 50, duplicates 0, rejected 0.' }).waitFor();
    await page.getByText('50 keys · page 1 of 1').waitFor();

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
    await page.screenshot({ path: path.join(SHOTS, 'keys.png'), fullPage: true });

    const rows = page.getByRole('table', { name: 'Keys' }).getByRole('row');
    for (const [status, n] of [['invalid', 5], ['exhausted', 5], ['active', 40]] as const) {
      await page.getByLabel('Status').selectOption(status);
      await page.getByText(`${n} keys · page 1`).waitFor();
      assert.equal(await rows.count(), n + 1, `${status} rows`);
      assert.equal(await page.locator('tbody .badge', { hasText: status }).count(), n);
    }
  });

  test('upload a .csv file of keys, then delete a bulk selection', async () => {
    await page.getByLabel('Status').selectOption('');
    const csv = `name,key\nfirst,tvly-dev-e2eupload00x1\nsecond,tvly-dev-e2eupload00x2\nagain,${good[0]}\n`;
    await page.getByLabel('Upload .txt or .csv').setInputFiles({ name: 'keys.csv', mimeType: 'text/csv', buffer: Buffer.from(csv) });
    await page.getByRole('button', { name: 'Import' }).click();
    await page.getByRole('status', { name: 'Import result' }).filter({ hasText: 'Added 2, duplicates 1, rejected 0.' }).waitFor();
    await page.getByText('52 keys · page 1 of 2').waitFor();

    // The search finds keys by their last characters.
    await page.getByLabel('Search').fill('00x');
    await page.getByText('2 keys · page 1 of 1').waitFor();
    await page.getByLabel('Select all on this page').check();
    await page.getByText('2 selected').waitFor();
    // Cancelled at the confirm: nothing is deleted, and nothing says it was.
    dialogAnswer = 'dismiss';
    const deletes = (await t.ctx.auditRepo.list({ action: 'keys.bulk', limit: 10 })).items.length;
    await page.getByRole('button', { name: 'Delete selected' }).click();
    await page.getByText('2 keys · page 1 of 1').waitFor();
    assert.equal(await page.getByRole('status').filter({ hasText: 'Done: deleted' }).count(), 0);
    assert.equal((await t.ctx.auditRepo.list({ action: 'keys.bulk', limit: 10 })).items.length, deletes, 'no bulk change reached the server');
    await page.getByText('2 selected').waitFor();
    dialogAnswer = 'accept';
    await page.getByRole('button', { name: 'Delete selected' }).click();
    await page.getByRole('status').filter({ hasText: 'Done: deleted 2 keys.' }).waitFor();
    await page.getByText('No keys match.').waitFor();
    await page.getByLabel('Search').fill('');
    await page.getByText('50 keys · page 1 of 1').waitFor();
  });

  test('disable a key from the table; the overview shows the figures', async () => {
    await page.getByLabel('Status').selectOption('active');
    const first = good.length;
    await page.getByText(`${first} keys · page 1`).waitFor();
    await page.getByRole('row').nth(1).getByRole('button', { name: /^Disable / }).click();
    await page.getByText(`${first - 1} keys · page 1`).waitFor();

    await page.getByRole('link', { name: 'Overview' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    assert.equal(await page.getByTestId('count-active').textContent(), '39');
    assert.equal(await page.getByTestId('count-disabled').textContent(), '1');
    assert.equal(await page.getByTestId('count-invalid').textContent(), '5');
    assert.equal(await page.getByTestId('count-exhausted').textContent(), '5');
    const summary = (await t.app.inject({ method: 'GET', url: '/api/v1/admin/summary', headers: t.auth })).json();
    assert.equal(await page.getByTestId('total-remaining').textContent(), new Intl.NumberFormat('en-US').format(summary.total_remaining));
    await page.screenshot({ path: path.join(SHOTS, 'overview-before-traffic.png'), fullPage: true });
  });

  test('create a token, copy it, search with it through the gateway, and find the request in the logs and the overview', async () => {
    await page.getByRole('link', { name: 'Tokens' }).click();
    await page.getByRole('heading', { name: 'Client tokens' }).waitFor();
    await page.getByText('No tokens yet').waitFor();
    await page.getByLabel('Name').fill('e2e agent');
    await page.getByLabel('Monthly budget (credits)').fill('500');
    await page.getByRole('button', { name: 'Create token' }).click();
    const token = (await page.getByTestId('new-token').textContent())!;
    assert.match(token, /^tp_/);
    await page.getByRole('button', { name: 'Copy' }).click();
    await page.getByRole('button', { name: 'Copied' }).waitFor();
    assert.equal(await page.evaluate('navigator.clipboard.readText()'), token);

    const res = await fetch(`${url}/search`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ query: 'from the dashboard test', search_depth: 'advanced' }),
    });
    assert.equal(res.status, 200);
    const { request_id: requestId } = (await res.json()) as { request_id: string };

    await page.reload();
    await page.getByRole('table', { name: 'Tokens' }).getByRole('cell', { name: 'e2e agent', exact: true }).waitFor();
    assert.equal(await page.getByTestId('spent-1').textContent(), '2');
    await page.screenshot({ path: path.join(SHOTS, 'tokens.png'), fullPage: true });

    await page.getByRole('link', { name: 'Logs' }).click();
    const row = page.getByRole('row').filter({ hasText: requestId });
    await row.waitFor();
    assert.match((await row.textContent())!, /e2e agent.*search.*200/);
    await page.getByLabel('Status').fill('500');
    await page.getByText('No requests match these filters.').waitFor();
    await page.getByLabel('Status').fill('');
    await row.waitFor();
    await page.screenshot({ path: path.join(SHOTS, 'logs.png'), fullPage: true });

    await page.getByRole('link', { name: 'Overview' }).click();
    await page.getByRole('img', { name: /^Credits spent per day \(14 days\)\. [0-9-]+: 2 credits$/ }).waitFor();
    await page.getByRole('img', { name: /^Requests per hour by outcome \(24 hours, UTC\)\. \d\dh: 1 succeeded, 0 failed$/ }).waitFor();
    assert.notEqual(await page.getByTestId('forecast').textContent(), 'not at this rate');
    await page.screenshot({ path: path.join(SHOTS, 'overview.png'), fullPage: true });

    // Revoking the token refuses it at once.
    await page.getByRole('link', { name: 'Tokens' }).click();
    await page.getByRole('button', { name: 'Revoke e2e agent' }).click();
    await page.getByText('No tokens yet').waitFor();
    const refused = await fetch(`${url}/search`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{"query":"x"}' });
    assert.equal(refused.status, 401);
  });

  test('keys that look like one account are suggested on the Keys page, confirmed there, and counted once', async () => {
    const pair = ['tvly-dev-e2epair00000001', 'tvly-dev-e2epair00000002'];
    fake.addAccount('e2e-pair', { plan: 'Bootstrap', planLimit: 15000, planUsage: 4321, keys: pair });
    const total = async () => (await t.app.inject({ method: 'GET', url: '/api/v1/admin/summary', headers: t.auth })).json().total_remaining as number;
    const before = await total();
    const added = await t.app.inject({ method: 'POST', url: '/api/v1/admin/tavily-keys?validate=true', headers: t.auth, payload: { keys: pair } });
    const ids = added.json().items.map((i: { id: number }) => i.id);
    await t.app.inject({ method: 'POST', url: '/api/v1/admin/tavily-keys/refresh-quota', headers: t.auth, payload: { ids } });
    assert.equal(await total(), before + 2 * (15000 - 4321), 'before: each key counts its account’s room');

    await page.getByRole('link', { name: 'Keys' }).click();
    const panel = page.getByRole('region', { name: 'Probably one account' });
    await panel.waitFor();
    assert.equal(await panel.getByRole('listitem').count(), 1);
    await panel.getByLabel('Name').fill('E2E pair');
    await page.screenshot({ path: path.join(SHOTS, 'keys-suggestion.png'), fullPage: true });
    await panel.getByRole('button', { name: 'Confirm as one account' }).click();
    await page.getByRole('status').filter({ hasText: 'Done: made the account E2E pair of 2 keys.' }).waitFor();
    await panel.waitFor({ state: 'detached' });

    const accounts = (await t.app.inject({ method: 'GET', url: '/api/v1/admin/accounts', headers: t.auth })).json();
    const made = accounts.items.find((a: { name: string }) => a.name === 'E2E pair');
    assert.equal(made.keys.total, 2);
    assert.equal(await total(), before + (15000 - 4321), 'after: the account counts once');

    await page.getByLabel('Account', { exact: true }).selectOption({ label: 'E2E pair' });
    await page.getByText('2 keys · page 1 of 1').waitFor();
    assert.equal(await page.getByRole('table', { name: 'Keys' }).getByRole('cell', { name: 'E2E pair', exact: true }).count(), 2);

    await page.getByRole('link', { name: 'Accounts' }).click();
    await page.getByRole('heading', { name: 'Accounts' }).waitFor();
    assert.equal(await page.getByTestId(`account-remaining-${made.id}`).textContent(), new Intl.NumberFormat('en-US').format(15000 - 4321));
    await page.screenshot({ path: path.join(SHOTS, 'accounts.png'), fullPage: true });
  });

  test('add a webhook sink, send it a test, and see an event delivered', async () => {
    const rx = await Receiver.start();
    try {
      await page.getByRole('link', { name: 'Alerts' }).click();
      await page.getByRole('heading', { name: 'Alerts', exact: true }).waitFor();
      const form = page.getByRole('form', { name: 'Add a sink' });
      await form.getByLabel('Name').fill('ops hook');
      await form.getByLabel('URL').fill(rx.url('/e2e'));
      await form.getByLabel('Few active keys').uncheck();
      await form.getByRole('button', { name: 'Add sink' }).click();
      await page.getByRole('status', { name: 'Signing secret' }).waitFor();
      const secret = await page.getByTestId('sink-secret').textContent();
      assert.match(secret ?? '', /^whsec_/);
      const row = page.getByRole('table', { name: 'Sinks' }).getByRole('row', { name: /ops hook/ });
      await row.waitFor();
      assert.match((await row.textContent()) ?? '', /all but Few active keys/);

      await page.getByRole('button', { name: 'Send a test to ops hook' }).click();
      await page.getByRole('status').filter({ hasText: 'Test sent to “ops hook”: the receiver answered 200' }).waitFor();
      assert.equal(JSON.parse(rx.requests.at(-1)!.body).events[0].type, 'test');

      // A key found invalid: one event, delivered to the sink, listed with its delivery.
      await t.app.inject({ method: 'POST', url: '/api/v1/admin/tavily-keys', headers: t.auth, payload: { keys: ['tvly-dev-invalid-e2ealert1'] } });
      await t.app.inject({ method: 'POST', url: '/api/v1/admin/tavily-keys/refresh-quota', headers: t.auth, payload: {} });
      await until(() => rx.acknowledged.length >= 2, 'the event delivered to the receiver');
      await page.getByRole('link', { name: 'Overview' }).click();
      await page.getByRole('link', { name: 'Alerts' }).click();
      const events = page.getByRole('table', { name: 'Events' });
      await events.getByText('1 key became invalid').waitFor();
      await events.getByText(/ops hook: delivered/).first().waitFor();
      await page.screenshot({ path: path.join(SHOTS, 'alerts.png'), fullPage: true });

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
      const saved = (await t.app.inject({ method: 'GET', url: '/api/v1/admin/alerts/rules', headers: t.auth })).json();
      assert.deepEqual(saved.rules.token_budget_percents, [50, 100]);
    } finally {
      await rx.close();
    }
  });

  test('a scoped token shows what it may do, and its refusals are one click away', async () => {
    const made = await t.app.inject({ method: 'POST', url: '/api/v1/admin/tokens', headers: t.auth, payload: { name: 'narrow', endpoints: ['search'], caps: { advanced: false } } });
    const { token, item } = made.json() as { token: string; item: { id: number } };
    const refused = await fetch(`${url}/extract`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ urls: ['https://example.com'] }) });
    assert.equal(refused.status, 403);
    await t.ctx.writeBehind.flush();
    await page.getByRole('link', { name: 'Tokens' }).click();
    const row = page.getByRole('table', { name: 'Tokens' }).getByRole('row', { name: /narrow/ });
    await row.waitFor();
    assert.match((await row.textContent()) ?? '', /only search; no advanced/);
    await page.getByRole('link', { name: 'Refusals of narrow' }).click();
    const logRow = page.getByRole('table', { name: 'Requests' }).getByRole('row').filter({ hasText: 'may not use extract' });
    await logRow.waitFor();
    assert.match((await logRow.textContent()) ?? '', /narrow.*extract.*403/);
    assert.equal(await page.getByLabel('Status').inputValue(), '403');
    assert.equal(await page.getByLabel('Token').inputValue(), String(item.id));
  });

  test('the audit page lists who changed what, filtered by family', async () => {
    await t.ctx.audit.flush();
    await page.getByRole('link', { name: 'Audit' }).click();
    await page.getByRole('heading', { name: 'Audit log' }).waitFor();
    const table = page.getByRole('table', { name: 'Audit log' });
    await table.getByRole('cell', { name: 'keys.add', exact: true }).first().waitFor();
    await page.getByLabel('Show').selectOption('tokens');
    await table.getByRole('cell', { name: 'tokens.create', exact: true }).first().waitFor();
    assert.equal(await table.getByRole('cell', { name: 'keys.add', exact: true }).count(), 0);
    await page.getByLabel('Show').selectOption('admin');
    const refused = table.getByRole('row', { name: /admin\.signin_failed/ });
    await refused.waitFor();
    assert.match((await refused.textContent()) ?? '', /attempts 1.*refused/);
    await page.screenshot({ path: path.join(SHOTS, 'audit.png'), fullPage: true });
  });

  test('dark mode follows the system, and the toggle overrides it across reloads', async () => {
    const background = () => page.evaluate<string>('getComputedStyle(document.body).backgroundColor');
    await page.getByRole('link', { name: 'Overview' }).click();
    await page.emulateMedia({ colorScheme: 'light' });
    await page.reload();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    assert.equal(await background(), 'rgb(247, 248, 250)');
    await page.emulateMedia({ colorScheme: 'dark' });
    // The system changed while the page was open: it follows.
    await page.waitForFunction("document.documentElement.dataset.theme === 'dark'");
    assert.equal(await background(), 'rgb(16, 20, 24)');
    await page.screenshot({ path: path.join(SHOTS, 'overview-dark.png'), fullPage: true });
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

  test('works in a narrow window, and nothing went wrong in the console', async () => {
    await page.setViewportSize({ width: 390, height: 800 });
    await page.getByRole('link', { name: 'Keys' }).click();
    await page.getByRole('heading', { name: 'Tavily keys' }).waitFor();
    await page.screenshot({ path: path.join(SHOTS, 'keys-narrow.png'), fullPage: true });
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('Admin token').waitFor();
    assert.deepEqual(consoleErrors, []);
  });
});

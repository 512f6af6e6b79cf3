// The web app against a real cloud (see cloud/server/tests/web_app.rs for the set-up).
import { type Page, expect, request, test } from '@playwright/test';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { env, expectAccessible, shot, signIn, tenant } from './helpers';

const wellName = env('WP_WELL');
const wellId = env('WP_WELL_ID');
const operator = { email: env('WP_OPERATOR_EMAIL'), password: env('WP_OPERATOR_PASSWORD') };
const viewer = { email: env('WP_VIEWER_EMAIL'), password: env('WP_VIEWER_PASSWORD') };

test.describe.configure({ mode: 'serial' });

// Requests the browser made to another origin: none are allowed.
function watchOrigins(page: Page): string[] {
  const foreign: string[] = [];
  const origin = new URL(env('WP_BASE_URL')).origin;
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.protocol !== 'data:' && u.origin !== origin) foreign.push(r.url());
  });
  return foreign;
}

test('a wrong password is told in words', async ({ page }) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto('/');
  await page.getByLabel('Email').fill(operator.email);
  await page.getByLabel('Password').fill('not-the-password-at-all');
  await page.keyboard.press('Enter');
  await expect(page.getByRole('alert')).toContainText('the email or the password is wrong');
  await shot(page, 'sign-in-error');
  await expectAccessible(page, 'the sign-in page');
  expect(errors).toEqual([]);
});

test('the operator sees the fleet: the well, its gateway online, its latest pressure', async ({ page }) => {
  const foreign = watchOrigins(page);
  await signIn(page, operator);
  const wells = page.getByRole('table', { name: 'wells' });
  const row = wells.getByRole('row', { name: new RegExp(wellName) });
  await expect(row).toContainText('1 / 1');
  await expect(row).toContainText('50.0');
  await expect(page.getByRole('table', { name: 'gateways' }).getByRole('row', { name: /gw-1/ })).toContainText('online');
  // Filter and sort with the keyboard.
  await page.getByLabel('Filter wells').fill('no such well');
  await expect(wells).toContainText('Nothing matches the filter.');
  await page.getByLabel('Filter wells').fill('smith');
  await expect(row).toBeVisible();
  await wells.getByRole('button', { name: /API number/ }).press('Enter');
  await expect(wells.getByRole('columnheader', { name: /API number/ })).toHaveAttribute('aria-sort', 'ascending');
  await shot(page, 'fleet');
  await expectAccessible(page, 'the fleet');
  expect(foreign).toEqual([]);

  // Figures: the fleet page reloaded (signed in; the browser may reuse its cache), from navigation start
  // to the well's row with its latest value on screen (an upper bound: read after it
  // shows), and the JavaScript the build ships, gzipped.
  await page.reload();
  await expect(row).toContainText('50.0');
  const loadMs = await page.evaluate(() => performance.now());
  const dist = fileURLToPath(new URL('../dist/assets', import.meta.url));
  const jsGzip = readdirSync(dist)
    .filter((f) => f.endsWith('.js'))
    .reduce((n, f) => n + gzipSync(readFileSync(path.join(dist, f)), { level: 9 }).length, 0);
  console.log(`BENCH web_fleet_load_ms=${loadMs.toFixed(0)} (localhost, 1 well, to its latest value on screen)`);
  console.log(`BENCH web_js_gzip_bytes=${jsGzip}`);
});

test('an alert that fires after the page loaded arrives live; the operator acknowledges it', async ({ page }) => {
  await signIn(page, operator);
  await page.getByRole('link', { name: /Alerts/ }).click();
  await expect(page).toHaveURL(new RegExp(`/t/${tenant}/alerts$`));
  const inbox = page.getByRole('table', { name: 'open alerts' });
  await expect(inbox).toContainText('No open alerts.');
  // Marks this document: a reload would lose it.
  await page.evaluate(() => ((window as unknown as { wpMark: number }).wpMark = 1));

  const fired = await fetch(env('WP_TRIGGER_URL'), { method: 'POST' });
  expect(fired.status).toBe(204);

  const row = inbox.getByRole('row', { name: new RegExp(wellName) });
  await expect(row).toBeVisible({ timeout: 30_000 });
  await expect(row).toContainText('critical');
  expect(await page.evaluate(() => (window as unknown as { wpMark?: number }).wpMark)).toBe(1);
  await expect(page.getByRole('link', { name: /Alerts/ })).toContainText('1');
  await shot(page, 'inbox-live');
  await expectAccessible(page, 'the alert inbox');

  await row.getByRole('link').first().click();
  const alertId = page.url().split('/').pop();
  const detail = page.getByRole('complementary');
  await expect(detail.getByTestId('alert-state')).toHaveText('firing');
  await expect(detail.getByText('Evidence')).toBeVisible();
  await detail.getByRole('button', { name: 'Acknowledge' }).click();
  await expect(detail.getByTestId('alert-state')).toHaveText('acknowledged');
  await detail.getByLabel('Add a comment').fill('Crew on the way');
  await detail.getByRole('button', { name: 'Comment' }).click();
  await expect(detail.locator('.comments')).toContainText('Crew on the way');
  await shot(page, 'alert-acknowledged');
  await expectAccessible(page, 'an alert');
  // The fleet counts it from the same live feed (navigating in the app, no reload).
  await page.getByRole('link', { name: 'Fleet' }).click();
  await expect(page.getByRole('table', { name: 'wells' }).getByRole('row', { name: new RegExp(wellName) })).toContainText('1 (critical)');
  expect(await page.evaluate(() => (window as unknown as { wpMark?: number }).wpMark)).toBe(1);

  // The API agrees.
  const api = await request.newContext({ baseURL: env('WP_BASE_URL') });
  const tokens = await (await api.post('/api/v1/auth/sign-in', { data: operator })).json();
  const answer = await api.get(`/api/v1/tenants/${tenant}/alerts/${alertId}`, {
    headers: { authorization: `Bearer ${tokens.access_token}` },
  });
  expect(answer.status()).toBe(200);
  const alert = await answer.json();
  expect(alert.state).toBe('acknowledged');
  expect(alert.acknowledged_by).toContain(operator.email);
  expect(alert.comments.map((c: { body: string }) => c.body)).toContain('Crew on the way');
  await api.dispose();
});

test('sorted by a live value, the fleet re-sorts as the values change', async ({ page }) => {
  // Two wells report casing pressure (no rule watches it): Garza 11H 80 psi, Ortiz 12H 60.
  const [first, second] = env('WP_CASING_WELLS').split(',');
  const casing = async (device: number, psi: number) => {
    const sent = await fetch(`${env('WP_CASING_URL')}?device=${device}&psi=${psi}`, { method: 'POST' });
    expect(sent.status).toBe(204);
  };
  await signIn(page, operator);
  const wells = page.getByRole('table', { name: 'wells' });
  const column = wells.getByRole('columnheader', { name: /Casing psi/ });
  // Highest first, with the keyboard.
  for (let i = 0; i < 2 && (await column.getAttribute('aria-sort')) !== 'descending'; i++) {
    await column.getByRole('button').press('Enter');
  }
  await expect(column).toHaveAttribute('aria-sort', 'descending');
  const order = async () =>
    (await wells.getByRole('row').allInnerTexts()).map((t) => [first, second].find((n) => t.includes(n))).filter((n) => n !== undefined);
  await expect.poll(order).toEqual([first, second]);
  await page.evaluate(() => ((window as unknown as { wpMark: number }).wpMark = 2));

  // Ortiz 12H passes Garza 11H: the rows swap without a reload, then swap back.
  await casing(1, 95);
  await expect(wells.getByRole('row', { name: new RegExp(second) })).toContainText('95.0');
  await expect.poll(order).toEqual([second, first]);
  await shot(page, 'fleet-sorted-live');
  await casing(0, 120);
  await expect(wells.getByRole('row', { name: new RegExp(first) })).toContainText('120.0');
  await expect.poll(order).toEqual([first, second]);
  expect(await page.evaluate(() => (window as unknown as { wpMark?: number }).wpMark)).toBe(2);
});

test('a viewer sees the alert but no button it cannot use', async ({ page }) => {
  await signIn(page, viewer);
  await page.getByRole('link', { name: /Alerts/ }).click();
  const row = page.getByRole('table', { name: 'open alerts' }).getByRole('row', { name: new RegExp(wellName) });
  await row.getByRole('link').first().click();
  const detail = page.getByRole('complementary');
  await expect(detail.getByTestId('alert-state')).toHaveText('acknowledged');
  await expect(detail.getByText('Crew on the way')).toBeVisible();
  for (const name of ['Acknowledge', 'Resolve', 'Silence', 'Comment', 'Assign to me', 'Unassign']) {
    await expect(page.getByRole('button', { name, exact: true })).toHaveCount(0);
  }
  await expect(page.getByRole('group', { name: 'Alert actions' })).toHaveCount(0);
  await expect(page.getByLabel('Add a comment')).toHaveCount(0);
  await shot(page, 'alert-viewer');
});

test('the well page charts the pressure with the alert marked', async ({ page }) => {
  await signIn(page, operator);
  await page.getByRole('table', { name: 'wells' }).getByRole('link', { name: wellName }).click();
  await expect(page).toHaveURL(new RegExp(`/t/${tenant}/wells/${wellId}$`));
  await expect(page.getByRole('heading', { level: 1 })).toHaveText(wellName);
  const chart = page.getByRole('img', { name: /tubing_pressure_psi/ });
  await expect(chart).toHaveAttribute('aria-label', /1 alert markers/);
  await expect(chart.locator('canvas')).toBeVisible();
  await page.setViewportSize({ width: 820, height: 1180 });
  await shot(page, 'well-tablet');
  await expectAccessible(page, 'the well page');
});

test('a well with history shows its daily production, decline fan chart with EUR, and emissions', async ({ page }) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const history = `/t/${tenant}/wells/${env('WP_HISTORY_WELL_ID')}`;
  const analytics = page.getByRole('region', { name: 'Production, decline and emissions' });
  // A viewer reads it all but may not derive anything again.
  await signIn(page, viewer);
  await page.goto(history);
  await expect(analytics.getByTestId('production-summary')).toContainText(/\d+ days: oil [\d,.]+ bbl/);
  await expect(analytics.getByTestId('eur')).toBeVisible();
  await expect(analytics.getByRole('button')).toHaveCount(0);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page.getByLabel('Email')).toBeVisible();

  await signIn(page, operator);
  await page.goto(history);
  await expect(analytics.getByTestId('production-summary')).toContainText(/\d+ days: oil [\d,.]+ bbl/);
  await expect(analytics.getByRole('img', { name: /daily production chart/ }).locator('canvas')).toBeVisible();
  await expect(analytics.getByTestId('eur')).toContainText(/EUR \(bbl\): P90 [\d,]+, P50 [\d,]+, P10 [\d,]+/);
  await expect(analytics.getByRole('img', { name: /decline fan chart/ }).locator('canvas')).toBeVisible();
  // March 2024, the month seeded with telemetry: its emissions derived from it.
  await analytics.getByLabel('From').fill('2024-03-01');
  await analytics.getByLabel('To (exclusive)').fill('2024-04-01');
  await expect(analytics.getByTestId('production-summary')).toContainText('31 days');
  await analytics.getByRole('button', { name: 'Derive production and emissions again' }).click();
  await expect(analytics.getByTestId('derived')).toContainText('Derived 31 days again');
  const leaks = analytics.getByRole('table', { name: 'emissions by source' }).getByRole('row', { name: /Wellhead leaks/ });
  await expect(leaks).toContainText('31 of 31');
  await expect(analytics.getByTestId('emissions-summary')).toContainText(/[\d.]+ t CO2e \(AR5/);
  await shot(page, 'well-analytics');
  // The models' outlook, from the caches the last refresh made: the gap from the well's own
  // clean decline, why there is no emissions forecast, and no failure-risk model yet.
  const outlook = page.getByRole('region', { name: 'Outlook' });
  await expect(outlook.getByTestId('gap')).toContainText(
    /On target: making [\d,.]+ bbl\/d against an expected [\d,.]+ \([\d,.]+ to [\d,.]+\) bbl\/d at full runtime; gap -?[\d,.]+ \(-?[\d,.]+ to -?[\d,.]+\) bbl\/d .*model gap-decline-peers\/1\)/,
  );
  await expect(outlook.getByRole('table', { name: 'opportunities' })).toHaveCount(0);
  await expect(outlook.getByTestId('emissions-forecast')).toContainText(/^Not forecast: .*RY/);
  await expect(outlook.getByTestId('risk')).toContainText('no failure-risk model is trained for this tenant yet');
  await outlook.scrollIntoViewIfNeeded();
  await shot(page, 'well-outlook');
  await expectAccessible(page, 'the well page with production, decline and emissions');
  expect(errors).toEqual([]);
});

test('insights rank the fleet as the models see it, and say why a list is empty', async ({ page }) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await signIn(page, viewer);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Insights' }).click();
  await expect(page.getByRole('heading', { name: 'Insights', level: 1 })).toBeVisible();
  // The history well's gap, from the refresh: its own clean decline, on target.
  const gaps = page.getByRole('table', { name: 'production gaps' });
  const row = gaps.getByRole('row', { name: /Pad R 1H/ });
  await expect(row).toContainText('On target');
  await expect(row).toContainText('gap-decline-peers/1');
  await expect(row.getByRole('cell').nth(3)).toHaveText(/^[\d.]+ \([\d.]+ to [\d.]+\)$/);
  await expect(page.getByText('Dollars at $70/bbl.')).toBeVisible();
  // No failure-risk model yet, and no well forecast (its leak factors end with RY2024).
  await expect(page.getByRole('table', { name: 'failure risk' })).toContainText('no failure-risk model is trained for this tenant yet');
  await expect(page.getByRole('table', { name: 'emissions forecasts' })).toContainText('No well forecast');
  await shot(page, 'insights');
  await expectAccessible(page, 'the insights page');
  // A row leads to the well's page and its outlook.
  await row.getByRole('link', { name: 'Pad R 1H' }).click();
  await expect(page.getByRole('region', { name: 'Outlook' }).getByTestId('gap')).toContainText('On target');
  expect(errors).toEqual([]);
});

test('an unknown tenant and an unknown page are told in words', async ({ page }) => {
  await signIn(page, operator);
  await page.goto(`/t/no-such-tenant`);
  await expect(page.getByRole('heading', { name: 'Not found' })).toBeVisible();
  await expect(page.getByRole('alert').first()).toContainText(/not found|no-such-tenant/i);
  await expectAccessible(page, 'an unknown tenant');
  await page.goto('/nowhere/at/all');
  await expect(page.getByRole('heading', { name: 'Not found' })).toBeVisible();
});

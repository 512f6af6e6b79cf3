// The browser scenario, last (files run in name order): a tenant administrator
// provisions a site, a well and a gateway in the browser, downloads the gateway's
// agent.toml, the real agent is started with it (cloud/server/tests/web_app.rs adapts only
// the data directory, metrics port and the test broker's address) polling the simulator,
// and the gateway comes online and the well's values arrive on its page, pushed live;
// then the simulator parts the pump's rod string and the administrator acknowledges the
// rod-part alert from the inbox.
import { expect, test } from '@playwright/test';
import { readFileSync } from 'node:fs';
import { env, expectAccessible, shot, signIn, tenant } from './helpers';

const boss = { email: env('WP_ADMIN_EMAIL'), password: env('WP_ADMIN_PASSWORD') };

test('provision in the browser, start the agent with the downloaded config, see it online and its values', async ({ page }) => {
  test.setTimeout(300_000);
  await signIn(page, boss);
  await page.goto(`/t/${tenant}/admin/sites`);
  const site = page.getByRole('form', { name: 'New site' });
  await site.getByLabel('Site name').fill('Pad S');
  await site.getByRole('button', { name: 'Create site' }).click();
  await expect(page.getByRole('table', { name: 'sites' }).getByRole('row', { name: /Pad S/ })).toBeVisible();

  await page.getByRole('navigation', { name: 'Administration' }).getByRole('link', { name: 'Wells', exact: true }).click();
  const well = page.getByRole('form', { name: 'New well' });
  await well.getByLabel('Site').selectOption({ label: 'Pad S' });
  await well.getByLabel('API number').fill('42-329-40003');
  await well.getByLabel('Well name').fill('Sim 1H');
  await well.getByLabel('State').fill('NM');
  await well.getByRole('button', { name: 'Create well' }).click();
  await expect(page.getByRole('table', { name: 'wells' }).getByRole('row', { name: /Sim 1H/ })).toBeVisible();

  await page.getByRole('navigation', { name: 'Administration' }).getByRole('link', { name: 'Gateways', exact: true }).click();
  const form = page.getByRole('form', { name: 'Provision a gateway' });
  await form.getByLabel('Gateway id').fill('sim-gw');
  await form.getByLabel('Site').selectOption({ label: 'Pad S' });
  await form.getByLabel('Device name').fill('pump-s');
  await form.getByLabel('Profile').selectOption(env('WP_SIM_PROFILE'));
  await form.getByLabel('Modbus TCP address').fill(env('WP_SIM_TCP'));
  await form.getByLabel('Modbus unit id').fill(env('WP_SIM_UNIT'));
  await form.getByLabel('Well it measures').selectOption({ label: 'Sim 1H (42-329-40003)' });
  await form.getByRole('button', { name: 'Provision' }).click();
  const issued = page.getByRole('region', { name: 'Issued credentials' });
  const [download] = await Promise.all([page.waitForEvent('download'), issued.getByRole('button', { name: 'Download agent.toml' }).click()]);
  const toml = readFileSync(await download.path(), 'utf8');

  // The gateway is installed: the real agent runs with this file.
  const started = await fetch(env('WP_AGENT_URL'), { method: 'POST', body: toml });
  expect(started.status).toBe(204);

  // It comes online: its page, read again until the cloud has its birth.
  await page.getByRole('table', { name: 'gateways' }).getByRole('link', { name: 'sim-gw' }).click();
  const panel = page.getByRole('region', { name: 'Gateway sim-gw' });
  await expect(async () => {
    await page.reload();
    await expect(panel.getByTestId('gateway-status')).toHaveText('online', { timeout: 1_000 });
    await expect(panel.getByTestId('last-birth')).toContainText('Agent version', { timeout: 1_000 });
  }).toPass({ timeout: 90_000 });
  await expect(panel).toContainText('pump-s');
  await shot(page, 'scenario-gateway-online');

  // The fleet shows the well with its gateway online.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Fleet' }).click();
  const row = page.getByRole('table', { name: 'wells' }).getByRole('row', { name: /Sim 1H/ });
  await expect(row).toContainText('1 / 1');

  // Its page shows what the agent polled, and newer values arrive pushed by the server:
  // no reload (the mark on this document survives), no Refresh click.
  await row.getByRole('link', { name: 'Sim 1H' }).click();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Sim 1H');
  await page.evaluate(() => ((window as unknown as { wpMark: number }).wpMark = 1));
  await expect(page.getByTestId('well-live-status')).toHaveText('(live)', { timeout: 60_000 });
  const latest = page.getByTestId('latest-value');
  await expect(latest).toBeVisible({ timeout: 60_000 });
  const first = await latest.textContent();
  await expect(latest).not.toHaveText(first!, { timeout: 60_000 });
  expect(await page.evaluate(() => (window as unknown as { wpMark?: number }).wpMark)).toBe(1);
  await expect(page.getByRole('table', { name: 'latest values' })).toContainText('tubing_pressure_psi');
  await expect(page.getByRole('img', { name: /chart/ }).locator('canvas')).toBeVisible();
  await shot(page, 'scenario-well-values');
  await expectAccessible(page, 'the well page with live data');

  // Trouble at the well: the simulator parts the pump's rod string. Detection on the live
  // data raises a rod-part alert, which arrives in the inbox without a reload, and the
  // administrator acknowledges it there.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: /Alerts/ }).click();
  const inbox = page.getByRole('table', { name: 'open alerts' });
  await expect(inbox).toBeVisible();
  const rodPart = inbox.getByRole('row', { name: /Sim 1H/ }).filter({ hasText: 'rod_part' });
  await expect(rodPart).toHaveCount(0);
  const broke = await fetch(`${env('WP_SIM_URL')}/failure?kind=rod_part`, { method: 'POST' });
  expect(broke.status, await broke.text()).toBe(204);
  await expect(rodPart).toBeVisible({ timeout: 120_000 });
  expect(await page.evaluate(() => (window as unknown as { wpMark?: number }).wpMark)).toBe(1);
  await rodPart.getByRole('link').first().click();
  const detail = page.getByRole('complementary');
  await expect(detail.getByTestId('alert-state')).toHaveText('firing');
  await expect(detail.getByText('Evidence')).toBeVisible();
  await detail.getByRole('button', { name: 'Acknowledge' }).click();
  await expect(detail.getByTestId('alert-state')).toHaveText('acknowledged');
  await shot(page, 'scenario-rod-part-acknowledged');
});

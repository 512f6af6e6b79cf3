// Administration, emailed links, roles and reports against a real cloud (set up by
// cloud/server/tests/web_app.rs). Runs before app.spec.ts (files run in name order), so it
// works beside that file's data: its own site, well and gateway, its own people.
import { type Page, expect, request, test } from '@playwright/test';
import { readFileSync } from 'node:fs';
import { env, expectAccessible, expectKeyboardReachable, linkPath, nextMail, shot, signIn, tenant } from './helpers';

const boss = { email: env('WP_ADMIN_EMAIL'), password: env('WP_ADMIN_PASSWORD') };
const root = { email: env('WP_ROOT_EMAIL'), password: env('WP_ROOT_PASSWORD') };
const viewer = { email: env('WP_VIEWER_EMAIL'), password: env('WP_VIEWER_PASSWORD') };
const newbie = { email: 'nina@acme.test', password: `pw-nina-${Date.now()}-first` };

test.describe.configure({ mode: 'serial' });

/** Errors thrown in the page: none are allowed. */
function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  return errors;
}

async function openAdmin(page: Page, section: string) {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Admin' }).click();
  await page.getByRole('navigation', { name: 'Administration' }).getByRole('link', { name: section, exact: true }).click();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText(section);
}

/** An API call as someone, outside the browser. */
async function apiAs(who: { email: string; password: string } | string) {
  const ctx = await request.newContext({ baseURL: env('WP_BASE_URL') });
  let token = typeof who === 'string' ? who : '';
  if (typeof who !== 'string') {
    const signed = await ctx.post('/api/v1/auth/sign-in', { data: who });
    expect(signed.status()).toBe(200);
    token = (await signed.json()).access_token;
  }
  return { ctx, headers: { authorization: `Bearer ${token}` } };
}

test('the tenant administrator provisions a site, a well and a gateway and downloads its agent.toml', async ({ page }) => {
  const errors = watchErrors(page);
  await signIn(page, boss);
  await openAdmin(page, 'Sites');
  const newSite = page.getByRole('form', { name: 'New site' });
  await newSite.getByLabel('Site name').fill('Pad 2');
  await newSite.getByLabel('State').fill('TX');
  await newSite.getByLabel('Operator number').fill('123456');
  await newSite.getByRole('button', { name: 'Create site' }).click();
  const sites = page.getByRole('table', { name: 'sites' });
  await expect(sites.getByRole('row', { name: /Pad 2/ })).toBeVisible();
  // A bad one is refused in words.
  await newSite.getByLabel('Site name').fill('Pad 2');
  await newSite.getByRole('button', { name: 'Create site' }).click();
  await expect(page.getByRole('alert')).toContainText('Could not change the sites');
  await shot(page, 'admin-sites');
  await expectAccessible(page, 'the sites page');
  await expectKeyboardReachable(page, 'main');

  // A throwaway site, deleted after asking.
  await newSite.getByLabel('Site name').fill('Temporary pad');
  await newSite.getByRole('button', { name: 'Create site' }).click();
  const temp = sites.getByRole('row', { name: /Temporary pad/ });
  await temp.getByRole('button', { name: 'Delete' }).click();
  await temp.getByRole('button', { name: 'Yes, delete' }).click();
  await expect(temp).toHaveCount(0);

  await openAdmin(page, 'Wells');
  const newWell = page.getByRole('form', { name: 'New well' });
  await newWell.getByLabel('Site').selectOption({ label: 'Pad 2' });
  await newWell.getByLabel('API number').fill('42-329-40002');
  await newWell.getByLabel('Well name').fill('Jones 2H');
  await newWell.getByLabel('County').fill('Lea');
  // New Mexico: the Form PR of the reports test has only the seeded Texas lease.
  await newWell.getByLabel('State').fill('NM');
  await newWell.getByRole('button', { name: 'Create well' }).click();
  await expect(page.getByRole('table', { name: 'wells' }).getByRole('row', { name: /Jones 2H/ })).toContainText('Pad 2');
  await shot(page, 'admin-wells');
  await expectAccessible(page, 'the wells page');

  await openAdmin(page, 'Gateways');
  const provision = page.getByRole('form', { name: 'Provision a gateway' });
  await provision.getByLabel('Gateway id').fill('pad2-gw');
  await provision.getByLabel('Site').selectOption({ label: 'Pad 2' });
  await provision.getByLabel('Device name').fill('pump-2');
  await provision.getByLabel('Profile').selectOption('rod-pump-controller');
  await provision.getByLabel('Modbus TCP address').fill('127.0.0.1:1503');
  await provision.getByLabel('Well it measures').selectOption({ label: 'Jones 2H (42-329-40002)' });
  await provision.getByRole('button', { name: 'Provision' }).click();
  const issued = page.getByRole('region', { name: 'Issued credentials' });
  await expect(issued).toContainText(`${tenant}/pad2-gw`);
  await shot(page, 'admin-gateway-provisioned');
  await expectAccessible(page, 'the provisioned gateway');
  const [download] = await Promise.all([page.waitForEvent('download'), issued.getByRole('button', { name: 'Download agent.toml' }).click()]);
  expect(download.suggestedFilename()).toBe('agent.toml');
  const toml = readFileSync(await download.path(), 'utf8');
  expect(toml).toContain(`tenant = "${tenant}"`);
  expect(toml).toContain('id = "pad2-gw"');
  expect(toml).toContain(`username = "${tenant}/pad2-gw"`);
  expect(toml).toMatch(/password = "[^"]{20,}"/);
  expect(toml).toContain('[[device]]\nname = "pump-2"\nprofile = "rod-pump-controller"\ntcp = "127.0.0.1:1503"');
  expect(toml).toContain('well = "42-329-40002"');
  const firstSecret = toml.match(/password = "([^"]+)"/)![1];
  // The secret is in the file, never in the page once dismissed.
  await issued.getByRole('button', { name: 'I saved it' }).click();
  expect(await page.content()).not.toContain(firstSecret);

  // Its page: offline, no birth yet; rotate (a new agent.toml), then revoke.
  await page.getByRole('table', { name: 'gateways' }).getByRole('link', { name: 'pad2-gw' }).click();
  const panel = page.getByRole('region', { name: 'Gateway pad2-gw' });
  await expect(panel.getByTestId('gateway-status')).toHaveText('offline');
  await expect(panel.getByTestId('last-birth')).toContainText('No birth received yet');
  await panel.getByLabel('Old secret keeps working (minutes)').fill('0');
  await panel.getByRole('button', { name: 'Rotate credentials' }).click();
  const rotated = page.getByRole('region', { name: 'Issued credentials' });
  await expect(rotated).toBeVisible();
  const [again] = await Promise.all([page.waitForEvent('download'), rotated.getByRole('button', { name: 'Download agent.toml' }).click()]);
  const secondSecret = readFileSync(await again.path(), 'utf8').match(/password = "([^"]+)"/)![1];
  expect(secondSecret).not.toBe(firstSecret);
  await panel.getByRole('button', { name: 'Revoke credentials' }).click();
  await panel.getByRole('button', { name: 'Yes, revoke credentials' }).click();
  await expect(panel.getByRole('status')).toContainText('Revoked');
  await shot(page, 'admin-gateway-detail');
  await expectAccessible(page, 'a gateway page');
  await expectKeyboardReachable(page, 'main');

  // The gateway that is online: its last birth.
  await page.goto(`/t/${tenant}/admin/gateways/gw-1`);
  const gw1 = page.getByRole('region', { name: 'Gateway gw-1' });
  await expect(gw1.getByTestId('gateway-status')).toHaveText('online');
  await expect(gw1.getByTestId('last-birth')).toContainText('Agent version');
  await shot(page, 'admin-gateway-online');

  // The API has what the pages did, and the audit log says who did it.
  const { ctx, headers } = await apiAs(boss);
  const wells = await (await ctx.get(`/api/v1/tenants/${tenant}/wells`, { headers })).json();
  expect(wells.items.map((w: { name: string; site: { name: string } }) => `${w.name}@${w.site.name}`)).toContain('Jones 2H@Pad 2');
  await ctx.dispose();
  await openAdmin(page, 'Audit log');
  const audit = page.getByRole('table', { name: 'audit log' });
  await expect(audit).toContainText('gateway.revoke');
  await expect(audit).toContainText('gateway:pad2-gw');
  await expect(audit).toContainText(boss.email);
  await shot(page, 'admin-audit');
  await expectAccessible(page, 'the audit log');
  expect(errors).toEqual([]);
});

test('people: an invitation is accepted from its email, roles change, a password is reset, a member removed', async ({ page }) => {
  await signIn(page, boss);
  await openAdmin(page, 'People');
  const invite = page.getByRole('form', { name: 'Invite someone' });
  await invite.getByLabel('Email to invite').fill(newbie.email);
  await invite.getByLabel('Name (optional)').fill('Nina');
  await invite.getByRole('combobox', { name: 'Role of the invited person' }).selectOption('viewer');
  await invite.getByRole('button', { name: 'Invite' }).click();
  await expect(page.getByRole('status')).toContainText(`Invitation sent to ${newbie.email} as viewer`);
  await shot(page, 'admin-people');
  await expectAccessible(page, 'the people page');
  await expectKeyboardReachable(page, 'main');

  const mail = await nextMail();
  expect(mail.to).toContain(newbie.email);
  const invitation = linkPath(mail.body, 'accept-invitation');

  // Signed out, as Nina: the link of the email.
  const nina = await page.context().browser()!.newContext({ baseURL: env('WP_BASE_URL') });
  const her = await nina.newPage();
  await her.goto(invitation);
  await expect(her.getByRole('heading', { name: 'Accept an invitation' })).toBeVisible();
  await her.getByLabel('New password').fill('short');
  await her.getByRole('button', { name: 'Join' }).click();
  await expect(her.getByRole('alert')).toContainText('password must be at least');
  await shot(her, 'accept-invitation-error');
  await expectAccessible(her, 'the invitation page');
  await her.getByLabel('New password').fill(newbie.password);
  await her.getByRole('button', { name: 'Join' }).click();
  await expect(her.getByRole('status')).toContainText('You have joined');
  await shot(her, 'accept-invitation-done');
  await her.getByRole('link', { name: 'Sign in' }).click();
  await signIn(her, newbie);
  // A viewer: no Admin link, and the admin pages say "not allowed".
  await expect(her.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Admin' })).toHaveCount(0);
  await her.goto(`/t/${tenant}/admin/people`);
  await expect(her.getByRole('heading', { name: 'Not allowed' })).toBeVisible();
  await expect(her.getByRole('alert')).toContainText('does not allow administration');
  await shot(her, 'viewer-not-allowed');
  await expectAccessible(her, 'the not-allowed page');

  // The administrator makes her an operator; the API agrees.
  await page.reload();
  const members = page.getByRole('table', { name: 'members' });
  await members.getByRole('combobox', { name: `Role of ${newbie.email}` }).selectOption('operator');
  await expect(members.getByRole('combobox', { name: `Role of ${newbie.email}` })).toHaveValue('operator');
  const { ctx, headers } = await apiAs(newbie);
  const me = await (await ctx.get('/api/v1/auth/me', { headers })).json();
  expect(me.tenants).toEqual([{ tenant, role: 'operator' }]);
  await ctx.dispose();

  // She forgot her password: the sign-in page's link, the email, a new password.
  await her.getByRole('button', { name: 'Sign out' }).click();
  await expect(her.getByRole('button', { name: 'Sign in' })).toBeVisible();
  await her.getByRole('link', { name: 'Forgot your password?' }).click();
  await her.getByLabel('Email').fill(newbie.email);
  await her.getByRole('button', { name: 'Send the link' }).click();
  await expect(her.getByRole('status')).toContainText('a link to choose a new password is on its way');
  await expectAccessible(her, 'the password reset request page');
  const reset = await nextMail();
  expect(reset.to).toContain(newbie.email);
  await her.goto(linkPath(reset.body, 'reset-password'));
  await expect(her.getByRole('heading', { name: 'Choose a new password' })).toBeVisible();
  newbie.password = `pw-nina-${Date.now()}-second`;
  await her.getByLabel('New password').fill(newbie.password);
  await her.getByRole('button', { name: 'Change the password' }).click();
  await expect(her.getByRole('status')).toContainText('Your password is changed');
  await shot(her, 'reset-password-done');
  await expectAccessible(her, 'the password reset page');
  // The link works once.
  await her.goto(linkPath(reset.body, 'reset-password'));
  await her.getByLabel('New password').fill('another-long-password');
  await her.getByRole('button', { name: 'Change the password' }).click();
  await expect(her.getByRole('alert')).toContainText('Could not change the password');
  await signIn(her, newbie);
  await nina.close();

  // Removed after asking; she is gone from the list.
  const row = members.getByRole('row', { name: new RegExp(newbie.email) });
  await row.getByRole('button', { name: 'Remove' }).click();
  await row.getByRole('button', { name: 'Yes, remove' }).click();
  await expect(members.getByRole('row', { name: new RegExp(newbie.email) })).toHaveCount(0);
});

test('API keys: created and shown once, work, revoked', async ({ page }) => {
  await signIn(page, boss);
  await openAdmin(page, 'API keys');
  const form = page.getByRole('form', { name: 'New API key' });
  await form.getByLabel('Key name').fill('SCADA export');
  await form.getByRole('combobox', { name: 'Role of the key' }).selectOption('viewer');
  await form.getByRole('button', { name: 'Create key' }).click();
  const key = await page.getByTestId('new-key').textContent();
  expect(key && key.length).toBeGreaterThan(20);
  await shot(page, 'admin-api-key-created');
  await expectAccessible(page, 'the API keys page');
  const { ctx, headers } = await apiAs(key!);
  expect((await ctx.get(`/api/v1/tenants/${tenant}/wells`, { headers })).status()).toBe(200);
  await page.getByRole('button', { name: 'I copied it' }).click();
  await expect(page.getByTestId('new-key')).toHaveCount(0);
  const row = page.getByRole('table', { name: 'API keys' }).getByRole('row', { name: /SCADA export/ });
  await row.getByRole('button', { name: 'Revoke' }).click();
  await row.getByRole('button', { name: 'Yes, revoke' }).click();
  await expect(row).toContainText('revoked');
  expect((await ctx.get(`/api/v1/tenants/${tenant}/wells`, { headers })).status()).toBe(401);
  await ctx.dispose();
});

test('alert destinations: added, a test alert sent and its delivery listed', async ({ page }) => {
  await signIn(page, boss);
  await openAdmin(page, 'Alert destinations');
  const form = page.getByRole('form', { name: 'New alert destination' });
  // A webhook needs the server's sealing key, which this server has not: told in words.
  await form.getByLabel('Name').fill('Ops webhook');
  await form.getByLabel('URL').fill('https://hooks.example.com/wellpulse');
  await form.getByRole('button', { name: 'Add destination' }).click();
  await expect(page.getByRole('alert')).toContainText('destination secrets cannot be kept on this server');
  await form.getByLabel('Name').fill('Alertmanager');
  await form.getByLabel('Kind').selectOption('alertmanager');
  await form.getByLabel('URL').fill('http://127.0.0.1:9/api/v2/alerts');
  await form.getByLabel('From severity').selectOption('critical');
  await form.getByRole('button', { name: 'Add destination' }).click();
  const row = page.getByRole('table', { name: 'alert destinations' }).getByRole('row', { name: /Alertmanager/ });
  await expect(row).toContainText('critical');
  await row.getByRole('button', { name: /Send test alert/ }).click();
  await expect(page.getByRole('status')).toContainText('Test alert queued (delivery');
  const deliveries = page.getByRole('table', { name: 'deliveries' });
  await expect(deliveries).toContainText('(test)');
  await shot(page, 'admin-destinations');
  await expectAccessible(page, 'the alert destinations page');
  await expectKeyboardReachable(page, 'main');
  // On a tablet in the field.
  await page.setViewportSize({ width: 820, height: 1180 });
  await shot(page, 'admin-destinations-tablet');
  await expectAccessible(page, 'the alert destinations page on a tablet');
  await row.getByRole('button', { name: 'Disable' }).click();
  await expect(row.getByRole('cell').nth(4)).toHaveText('no');
});

test('plan and usage of the tenant', async ({ page }) => {
  await signIn(page, boss);
  await openAdmin(page, 'Plan and usage');
  await expect(page.getByTestId('plan')).toHaveText('standard');
  await expect(page.getByRole('table', { name: 'daily usage' })).toBeVisible();
  await shot(page, 'admin-usage');
  await expectAccessible(page, 'the usage page');
});

test('billing: subscribing through Checkout, Stripe confirming it, the portal, a failed payment', async ({ page }) => {
  const errors = watchErrors(page);
  const stripe = async (route: string) => {
    const answer = await fetch(`${env('WP_STRIPE_URL')}${route}`, { method: 'POST' });
    const text = await answer.text();
    expect(answer.status, `${route}: ${text}`).toBe(200);
    return text;
  };
  await signIn(page, boss);
  await openAdmin(page, 'Billing');
  await expect(page.getByTestId('billing-plan')).toHaveText('standard');
  await expect(page.getByTestId('billing-status')).toHaveText('no subscription yet');
  await expect(page.getByTestId('upcoming-invoice')).toContainText('no subscription yet');
  await expect(page.getByRole('table', { name: 'invoices' })).toContainText('No invoices yet.');
  await shot(page, 'admin-billing');
  await expectAccessible(page, 'the billing page');
  // A plan the server does not sell is refused in words.
  const subscribe = page.getByRole('form', { name: 'Subscribe' });
  await subscribe.getByLabel('Plan').fill('platinum');
  await subscribe.getByRole('button', { name: 'Subscribe with Stripe Checkout' }).click();
  await expect(page.getByRole('alert')).toContainText(/open the payment page/);
  await shot(page, 'admin-billing-refused');

  // Checkout: the API creates the session and the browser goes to Stripe's page (answered
  // here: the fake Stripe's checkout URL is not a real site).
  await page.route('https://checkout.stripe.test/**', (route) =>
    route.fulfill({ contentType: 'text/html', body: '<!doctype html><html lang="en"><title>Stripe Checkout</title><h1>Stripe Checkout</h1></html>' }),
  );
  await subscribe.getByLabel('Plan').fill('standard');
  await subscribe.getByRole('button', { name: 'Subscribe with Stripe Checkout' }).press('Enter');
  await expect(page).toHaveURL(/^https:\/\/checkout\.stripe\.test\/c\/pay\/cs_/);
  await expect(page.getByRole('heading', { name: 'Stripe Checkout' })).toBeVisible();

  // The customer pays and Stripe sends the browser back to this tenant's billing page,
  // before its webhook reached the server: the page says it waits, and follows.
  const session = new URL(page.url()).pathname.split('/').pop()!;
  const back = await stripe(`/checkout/${session}`);
  expect(back).toContain(`/t/${tenant}/admin/billing?checkout=done&session=${session}`);
  await page.goto(back);
  await expect(page.getByTestId('checkout-return')).toContainText('Waiting for Stripe to confirm the subscription');
  await expect(page.getByTestId('billing-status')).toHaveText('no subscription yet');
  await shot(page, 'admin-billing-confirming');
  await stripe(`/checkout/${session}/events`);
  await expect(page.getByTestId('checkout-return')).toContainText('Stripe confirmed the subscription: the tenant is active');
  await expect(page.getByTestId('billing-status')).toHaveText('active');
  await expect(page.getByTestId('upcoming-invoice')).toContainText('$499.00 due');
  const invoices = page.getByRole('table', { name: 'invoices' });
  await expect(invoices.getByRole('row', { name: /in_web_1/ })).toContainText('paid');
  await expect(invoices.getByRole('row', { name: /in_web_1/ })).toContainText('$499.00');
  await shot(page, 'admin-billing-active');
  await expectAccessible(page, 'the billing page of a paying tenant');

  // The Customer Portal (payment method, invoices, cancel) is Stripe's page too.
  await page.route('https://billing.stripe.test/**', (route) =>
    route.fulfill({ contentType: 'text/html', body: '<!doctype html><html lang="en"><title>Stripe portal</title><h1>Stripe customer portal</h1></html>' }),
  );
  await page.getByRole('button', { name: 'Manage payment and invoices in the Stripe portal' }).click();
  await expect(page).toHaveURL(/^https:\/\/billing\.stripe\.test\/p\/session\//);
  await expect(page.getByRole('heading', { name: 'Stripe customer portal' })).toBeVisible();
  await page.goBack();

  // A later payment fails: the tenant keeps working through the grace period, and its
  // administrators are told what to do and by when.
  await stripe('/payment-failed');
  await page.reload();
  await expect(page.getByTestId('billing-status')).toHaveText('payment overdue');
  // The return from Checkout was told once: the address no longer says so.
  await expect(page.getByTestId('checkout-return')).toHaveCount(0);
  expect(new URL(page.url()).search).toBe('');
  await expect(page.getByTestId('billing-overdue')).toContainText(/A payment failed\. Update the payment method in the Stripe portal before .+, or the tenant is suspended\./);
  await shot(page, 'admin-billing-overdue');
  await expectAccessible(page, 'the billing page with a payment overdue');
  expect(errors).toEqual([]);
});

test('reports: previewed, downloaded as CSV, printed; a month that cannot be filed says why', async ({ page }) => {
  // A viewer may read reports.
  await signIn(page, viewer);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Reports' }).click();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Reports');
  await page.getByRole('combobox', { name: 'Report' }).selectOption('form-pr');
  await page.getByLabel('Month').fill(new Date().toISOString().slice(0, 7));
  await page.getByRole('button', { name: 'Preview' }).click();
  // This month has hours of data, not a month: every problem is listed in words.
  const problem = page.getByRole('alert');
  await expect(problem).toContainText('Could not make the report');
  await expect(problem.getByRole('listitem').first()).toBeVisible();
  await shot(page, 'reports-problems');
  await expectAccessible(page, 'the reports page with problems');

  // March 2024 is complete (seeded by the test): preview, CSV, printable page.
  await page.getByLabel('Month').fill('2024-03');
  await page.getByRole('button', { name: 'Preview' }).click();
  const table = page.getByRole('table', { name: /Form PR.*\(2024-03\)/ });
  await expect(table).toBeVisible();
  const oil = table.getByRole('row', { name: /oil production/ });
  await expect(oil).toContainText('3100');
  await shot(page, 'reports-preview');
  await expectAccessible(page, 'a report preview');
  await expectKeyboardReachable(page, 'main');
  const [csv] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download CSV' }).click()]);
  expect(csv.suggestedFilename()).toBe('form-pr-2024-03.csv');
  const text = readFileSync(await csv.path(), 'utf8');
  expect(text).toContain(',oil,production,,3100,,');
  await page.getByRole('button', { name: 'Printable page' }).click();
  const printable = page.getByRole('article', { name: 'Printable report' });
  await expect(printable.getByRole('table', { name: /Form PR.*\(2024-03\)/ })).toBeVisible();
  await page.emulateMedia({ media: 'print' });
  await expect(page.locator('header.top')).toBeHidden();
  await expect(printable.getByRole('button', { name: 'Print' })).toBeHidden();
  await shot(page, 'reports-printable');
  await page.emulateMedia({ media: 'screen' });
  await expectAccessible(page, 'the printable report');
  await printable.getByRole('button', { name: 'Back to the reports' }).click();
  await expect(page.getByRole('form', { name: 'Choose a report' })).toBeVisible();
});

test('platform administration: a tenant created, its administrator joins, suspended, reactivated, re-planned', async ({ page }) => {
  await signIn(page, root, /\/$/);
  await page.getByRole('link', { name: /Manage tenants/ }).click();
  await expect(page).toHaveURL(/\/admin\/tenants$/);
  const form = page.getByRole('form', { name: 'New tenant' });
  await form.getByLabel('Tenant id').fill('beta');
  await form.getByLabel('Company name').fill('Beta Oil');
  await form.getByLabel("Administrator's email").fill('bea@beta.test');
  await form.getByRole('button', { name: 'Create tenant' }).click();
  await expect(page.getByRole('status')).toContainText('beta created');
  const mail = await nextMail();
  expect(mail.to).toContain('bea@beta.test');
  await shot(page, 'platform-tenants');
  await expectAccessible(page, 'the platform tenants page');

  await page.getByRole('table', { name: 'tenants' }).getByRole('link', { name: 'beta' }).click();
  const panel = page.getByRole('region', { name: 'Tenant beta' });
  await expect(panel.getByTestId('tenant-status')).toHaveText('active');
  await panel.getByRole('button', { name: 'Suspend' }).click();
  await panel.getByRole('button', { name: 'Yes, suspend' }).click();
  await expect(panel.getByTestId('tenant-status')).toHaveText('suspended');
  await panel.getByRole('button', { name: 'Reactivate' }).click();
  await expect(panel.getByTestId('tenant-status')).toHaveText('active');
  await panel.getByLabel('Plan', { exact: true }).fill('no-such-plan');
  await panel.getByRole('button', { name: 'Change plan' }).click();
  await expect(panel.getByRole('alert')).toContainText(/plan/);
  await panel.getByLabel('Plan', { exact: true }).fill('starter');
  await panel.getByRole('button', { name: 'Change plan' }).click();
  await expect(panel.getByTestId('plan')).toHaveText('starter');
  await expect(panel.getByLabel('Plan and quotas')).toContainText('25');
  await shot(page, 'platform-tenant');
  await expectAccessible(page, 'a tenant of the platform page');

  // Beta's administrator joins from the email, and cannot see acme: "not found".
  const bea = await page.context().browser()!.newContext({ baseURL: env('WP_BASE_URL') });
  const her = await bea.newPage();
  await her.goto(linkPath(mail.body, 'accept-invitation'));
  await her.getByLabel('New password').fill('bea-password-long-enough');
  await her.getByRole('button', { name: 'Join' }).click();
  await expect(her.getByRole('status')).toContainText('You have joined');
  await signIn(her, { email: 'bea@beta.test', password: 'bea-password-long-enough' }, /\/t\/beta$/);
  await her.goto(`/t/${tenant}/admin/gateways`);
  await expect(her.getByRole('heading', { name: 'Not found' })).toBeVisible();
  await expect(her.getByRole('alert')).toContainText(`Tenant ${tenant} not found`);
  await her.goto(`/t/${tenant}/wells/1`);
  await expect(her.getByRole('heading', { name: 'Not found' })).toBeVisible();
  await shot(her, 'other-tenant-not-found');
  await bea.close();

  // A tenant administrator is not a platform administrator.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page.getByRole('button', { name: 'Sign in' })).toBeVisible();
  await signIn(page, boss);
  await page.goto('/admin/tenants');
  await expect(page.getByRole('heading', { name: 'Not allowed' })).toBeVisible();
});

// Shared by the browser tests (run by cloud/server/tests/web_app.rs, which sets WP_*).
import { type Page, expect } from '@playwright/test';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

export function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run these tests through cloud/server/tests/web_app.rs (./test.sh)`);
  return value;
}

export interface Who {
  email: string;
  password: string;
}

export const tenant = env('WP_TENANT');

/** Signs in from the sign-in form; `landing` is where the app should go. */
export async function signIn(page: Page, who: Who, landing: RegExp = new RegExp(`/t/${tenant}$`)) {
  // What the API answered on the way, to say why if the landing page never comes.
  const answers: string[] = [];
  const note = (r: import('@playwright/test').Response) => {
    if (r.url().includes('/api/')) answers.push(`${r.request().method()} ${new URL(r.url()).pathname} ${r.status()}`);
  };
  const failed = (r: import('@playwright/test').Request) => answers.push(`${r.method()} ${new URL(r.url()).pathname} failed: ${r.failure()?.errorText}`);
  const navigated = (f: import('@playwright/test').Frame) => f === page.mainFrame() && answers.push(`navigated to ${f.url()}`);
  const console_ = (m: import('@playwright/test').ConsoleMessage) => answers.push(`console ${m.type()}: ${m.text()}`);
  page.on('response', note);
  page.on('requestfailed', failed);
  page.on('framenavigated', navigated);
  page.on('console', console_);
  await page.goto('/');
  const email = page.getByLabel('Email');
  const password = page.getByLabel('Password');
  // On a loaded machine the form has twice been seen back in its first state (fields
  // empty, no answer shown) after the typing: once before the click, so that the submit
  // never left the browser (the fields are required), once after it, with the sign-in
  // request sent and never answered. The cause is not known (see the issue notes); what
  // the page did is printed each time. Type, check what the fields hold, submit, and try
  // again (3 tries) only when the form came back that way without any answer; any answer
  // is judged as it is.
  const signInButton = page.getByRole('button', { name: 'Sign in' });
  for (let attempt = 1; ; attempt++) {
    answers.length = 0;
    await email.fill(who.email);
    await password.fill(who.password);
    await expect(email).toHaveValue(who.email);
    await expect(password).toHaveValue(who.password);
    await signInButton.click();
    const outcome = await Promise.race([
      page.waitForURL(landing, { timeout: 20_000 }).then(() => 'landed' as const, () => 'timeout' as const),
      expect(email)
        .toHaveValue('', { timeout: 20_000 })
        .then(() => expect(signInButton).toBeEnabled())
        .then(() => page.getByRole('alert').count())
        .then((alerts) => (alerts === 0 && !answers.some((a) => a.startsWith('POST /api/v1/auth/sign-in ')) ? ('reset' as const) : ('timeout' as const)), () => 'timeout' as const),
    ]);
    if (outcome !== 'reset') break;
    console.log(`signIn(${who.email}) try ${attempt}: the form came back empty without an answer; the page: ${answers.join(', ')}`);
    if (attempt === 3) throw new Error(`the sign-in form as ${who.email} came back empty without an answer 3 times: ${answers.join(', ')}`);
  }
  await expect(page, `signed in as ${who.email}; the API answered: ${answers.join(', ')}`).toHaveURL(landing);
  page.off('response', note);
  page.off('requestfailed', failed);
  page.off('framenavigated', navigated);
  page.off('console', console_);
  if (landing.source.startsWith('/t/')) await expect(page.locator('.live')).toHaveText('live');
}

export const shot = (page: Page, name: string) => page.screenshot({ path: path.join(env('WP_SCREENSHOTS'), `${name}.png`), fullPage: true });

const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

interface Violation {
  id: string;
  impact: string;
  help: string;
  targets: string[];
}

/**
 * axe-core over the page as it is: no serious or critical violation. The script is
 * evaluated through the DevTools protocol, so the page's Content-Security-Policy (no
 * inline scripts) stays as it is.
 */
export async function expectAccessible(page: Page, what: string) {
  await page.evaluate(axeSource);
  const violations: Violation[] = await page.evaluate(async () => {
    const axe = (window as unknown as { axe: { run: (ctx: Document, opts: object) => Promise<{ violations: { id: string; impact: string; help: string; nodes: { target: string[] }[] }[] }> } }).axe;
    const result = await axe.run(document, { resultTypes: ['violations'] });
    return result.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => ({ id: v.id, impact: v.impact, help: v.help, targets: v.nodes.map((n) => n.target.join(' ')) }));
  });
  expect(violations, `accessibility of ${what}`).toEqual([]);
}

/**
 * Every visible control of `scope` (links, buttons, fields) is reached with the Tab key
 * alone, starting from the top of the document.
 */
export async function expectKeyboardReachable(page: Page, scope: string) {
  const count = await page.evaluate((sel) => {
    const controls = Array.from(document.querySelectorAll(`${sel} a[href], ${sel} button, ${sel} input, ${sel} select, ${sel} textarea, ${sel} summary`)).filter(
      (el) => (el as HTMLElement).offsetParent !== null && !(el as HTMLButtonElement).disabled,
    );
    controls.forEach((el, i) => el.setAttribute('data-kb', String(i)));
    return controls.length;
  }, scope);
  expect(count).toBeGreaterThan(0);
  await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
  const seen = new Set<string>();
  const total = await page.evaluate(() => document.querySelectorAll('a[href], button, input, select, textarea, summary').length);
  for (let i = 0; i < total + 5 && seen.size < count; i++) {
    await page.keyboard.press('Tab');
    const mark = await page.evaluate(() => document.activeElement?.getAttribute('data-kb') ?? null);
    if (mark !== null) seen.add(mark);
  }
  const missed = await page.evaluate(
    (got) => Array.from(document.querySelectorAll('[data-kb]')).filter((el) => !got.includes(el.getAttribute('data-kb')!)).map((el) => el.outerHTML.slice(0, 120)),
    [...seen],
  );
  expect(missed, `controls of ${scope} not reachable with Tab`).toEqual([]);
}

/** The next email the cloud sent (through the test's mail helper). */
export async function nextMail(): Promise<{ to: string[]; subject: string; body: string }> {
  const answer = await fetch(env('WP_MAIL_URL'));
  expect(answer.status, 'an email arrives').toBe(200);
  return answer.json();
}

/** The path and query of the app link in an email (`…/accept-invitation?token=…`). */
export function linkPath(body: string, page: string): string {
  const m = body.match(new RegExp(`/${page}\\?token=[A-Za-z0-9_-]+`));
  expect(m, `a ${page} link in: ${body}`).not.toBeNull();
  return m![0];
}

// The browser half of `cargo bench -p tests --bench web` (tests/benches/web.rs sets up a
// live fleet and passes WP_* variables). Drives Debian's Chromium with Playwright and
// prints `BENCH <name> <value> <unit>` lines; context lines start with `#`.
import { chromium } from '@playwright/test';
import { gzipSync } from 'node:zlib';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run this through cargo bench -p tests --bench web`);
  return v;
};
const base = env('WP_BASE_URL');
const tenant = env('WP_TENANT');
const wells = Number(env('WP_WELLS'));
const wellId = env('WP_WELL_ID');
const session = JSON.stringify({ access: env('WP_TOKEN'), refresh: '', email: 'viewer@bench.test' });
const WATCH_MS = 20_000;

// Installed before any script of the page: long tasks and a 10 ms timer's longest gap.
function instrument() {
  const w = window;
  w.wpLong = [];
  w.wpGap = 0;
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) w.wpLong.push(e.duration);
  }).observe({ type: 'longtask', buffered: true });
  let last = performance.now();
  setInterval(() => {
    const now = performance.now();
    w.wpGap = Math.max(w.wpGap, now - last - 10);
    last = now;
  }, 10);
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  // A new context: empty cache, signed in (the session the app keeps in sessionStorage).
  const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
  await context.addInitScript((value) => sessionStorage.setItem('wellpulse.session', value), session);
  await context.addInitScript(instrument);
  const page = await context.newPage();
  const scripts = [];
  page.on('response', async (r) => {
    if (r.request().resourceType() === 'script') scripts.push(r.body().then((b) => gzipSync(b, { level: 9 }).length).catch(() => 0));
  });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));

  await page.goto(`${base}/t/${tenant}/`);
  // Navigation start to every well on screen with its latest values (no "…" left).
  const loaded = await page.waitForFunction(
    (n) => {
      const table = document.querySelector('table[aria-label="wells"]');
      if (!table || table.querySelectorAll('tbody tr').length < n || table.textContent.includes('…')) return false;
      return performance.now();
    },
    wells,
    { polling: 'raf', timeout: 60_000 },
  );
  const loadMs = await loaded.jsonValue();
  const jsBytes = (await Promise.all(scripts)).reduce((a, b) => a + b, 0);
  console.log(`BENCH web_fleet_first_load_ms ${loadMs.toFixed(0)} ms`);
  console.log(`BENCH web_js_gzip_bytes ${jsBytes} bytes`);

  // Live updates: what the main thread does while every well's values change each second.
  const watch = async (what, selector) => {
    await page.evaluate((sel) => {
      const w = window;
      w.wpLong = [];
      w.wpGap = 0;
      w.wpChanges = 0;
      let seen = document.querySelector(sel)?.textContent;
      new MutationObserver(() => {
        const now = document.querySelector(sel)?.textContent;
        if (now !== seen) w.wpChanges++;
        seen = now;
      }).observe(document.querySelector(sel), { subtree: true, childList: true, characterData: true });
    }, selector);
    await page.waitForTimeout(WATCH_MS);
    const r = await page.evaluate(() => ({ long: window.wpLong, gap: window.wpGap, changes: window.wpChanges }));
    const longest = r.long.length ? Math.max(...r.long) : 0;
    console.log(`BENCH web_${what}_longest_task_ms ${longest.toFixed(0)} ms`);
    console.log(`BENCH web_${what}_long_tasks ${r.long.length} count`);
    console.log(`BENCH web_${what}_max_loop_gap_ms ${r.gap.toFixed(0)} ms`);
    console.log(`BENCH web_${what}_updates_per_s ${(r.changes / (WATCH_MS / 1000)).toFixed(2)} 1/s`);
    if (r.changes < WATCH_MS / 1000 / 4) throw new Error(`the ${what} page changed only ${r.changes} times in ${WATCH_MS} ms: the updates did not flow`);
  };
  await watch('fleet', 'table[aria-label="wells"] tbody');
  // The same, sorted by a live value: the table re-sorts (at most once a second) as the
  // values change, the heaviest the fleet page gets.
  const column = page.getByRole('columnheader', { name: /Tubing psi/ });
  for (let i = 0; i < 2 && (await column.getAttribute('aria-sort')) !== 'descending'; i++) await column.getByRole('button').click();
  if ((await column.getAttribute('aria-sort')) !== 'descending') throw new Error('the fleet did not sort by tubing pressure');
  await watch('fleet_sorted', 'table[aria-label="wells"] tbody');

  await page.goto(`${base}/t/${tenant}/wells/${wellId}`);
  await page.getByRole('table', { name: 'latest values' }).waitFor({ timeout: 60_000 });
  const series = await page.locator('table[aria-label="latest values"] tbody tr').count();
  console.log(`# the well page shows ${series} latest values`);
  await watch('well', 'table[aria-label="latest values"] tbody');
  if (errors.length) throw new Error(`page errors: ${errors.join('; ')}`);
} finally {
  await browser.close();
}

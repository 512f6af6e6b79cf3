import { defineConfig } from '@playwright/test';

// Run by cloud/server/tests/web_app.rs (under `./test.sh`), which starts a real
// `wellpulse-cloud run`, sets up a tenant and passes everything in WP_* variables.
// Debian's Chromium: `npx playwright install` cannot download browsers here.
export default defineConfig({
  testDir: 'tests',
  workers: 1,
  retries: 0,
  forbidOnly: true,
  timeout: 60_000,
  expect: { timeout: 15_000 },
  reporter: [['list']],
  use: {
    baseURL: process.env.WP_BASE_URL,
    screenshot: 'only-on-failure',
    trace: 'off',
    launchOptions: {
      executablePath: '/usr/bin/chromium',
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
  },
});

import { defineConfig } from 'vite';
import preact from '@preact/preset-vite';

// The built files are served by `wellpulse-cloud` from the API's origin (`[api] web_dir`),
// under a Content-Security-Policy that allows this origin only: no inline script, and no
// module-preload polyfill (it would be an inline script).
export default defineConfig({
  plugins: [preact()],
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    sourcemap: false,
    modulePreload: { polyfill: false },
    chunkSizeWarningLimit: 400,
  },
  server: {
    // `npm run dev` against a running cloud: WELLPULSE_API=http://127.0.0.1:8080
    proxy: { '/api': process.env.WELLPULSE_API ?? 'http://127.0.0.1:8080' },
  },
});

// Builds the dashboard into dist/, which is committed and compiled into the `chronicle`
// binary (crates/chronicle-http/src/dashboard.rs). `npm run dev` serves it with the API of a
// `chronicle serve` on 127.0.0.1:8080 behind the same origin.
import { defineConfig } from 'vite';

const api = process.env.CHRONICLE_URL ?? 'http://127.0.0.1:8080';

export default defineConfig({
  oxc: {
    jsx: { runtime: 'automatic', importSource: 'preact' },
  },
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    emptyOutDir: true,
    sourcemap: false,
    target: 'es2022',
    // Every supported browser preloads modules itself; the polyfill would only add code.
    modulePreload: { polyfill: false },
    rolldownOptions: {
      // The service worker is an entry of its own, bundled and minified like the pages, but
      // kept at dist/sw.js under a fixed name: a worker's scope is its script's folder, so it
      // must stand at the root to serve `/`, and browsers look for updates at the same URL.
      input: { index: 'index.html', sw: 'src/sw.js' },
      output: {
        entryFileNames: (chunk) => (chunk.name === 'sw' ? 'sw.js' : 'assets/[name]-[hash].js'),
      },
    },
  },
  server: {
    proxy: Object.fromEntries(['/v1', '/readyz', '/openapi.json'].map((path) => [path, api])),
  },
});

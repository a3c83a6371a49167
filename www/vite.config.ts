import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// The demo imports the SDK by its package name, like any web wallet; here the name points at the
// package built into ../pkg by scripts/build.sh.
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  resolve: {
    alias: { 'waas-sdk': fileURLToPath(new URL('../pkg/index.js', import.meta.url)) },
  },
  // The SDK finds its .wasm next to itself; pre-bundling would move it away from the file.
  optimizeDeps: { exclude: ['waas-sdk'] },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // Two pages: the wallet, and recovery. recover/index.html is served as /recover/ (waas-server's
    // static files redirect /recover there), so the page needs no route of its own.
    rollupOptions: {
      input: {
        main: fileURLToPath(new URL('index.html', import.meta.url)),
        recover: fileURLToPath(new URL('recover/index.html', import.meta.url)),
      },
    },
  },
  server: {
    // `npm run dev` style development: the API comes from a waas-server on the default port.
    proxy: { '/v1': 'http://127.0.0.1:8080', '/healthz': 'http://127.0.0.1:8080' },
  },
});

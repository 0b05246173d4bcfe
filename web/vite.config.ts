import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// React's automatic JSX runtime through esbuild: no plugin needed to build the dashboard.
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/',
  esbuild: { jsx: 'automatic' },
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: true },
  logLevel: 'warn',
});

import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// React's automatic JSX runtime through esbuild: no plugin needed to build the dashboard.
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/',
  esbuild: { jsx: 'automatic' },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: true,
    rollupOptions: {
      // TanStack Query and recharts mark modules "use client" (a React Server Components hint): meaningless here.
      onwarn(warning, warn) {
        if (warning.code === 'MODULE_LEVEL_DIRECTIVE') return;
        warn(warning);
      },
    },
  },
  logLevel: 'warn',
});

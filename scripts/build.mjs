// Builds what `npm start` serves: the server (tsc, incremental) and, when it is missing, the dashboard.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync } from 'node:fs';

const run = (cmd, args) => {
  const r = spawnSync(cmd, args, { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
};
run(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json']);
// `npx tavily-pool …` runs the built CLI directly: it must be executable.
chmodSync('dist/src/cli.js', 0o755);
if (process.argv.includes('--web') || !existsSync('web/dist/index.html')) {
  console.error('building the dashboard (web/dist)…');
  // Type-checked first: its types come from the server's schemas, so a field renamed there stops the build.
  run(process.execPath, ['node_modules/typescript/bin/tsc', '--noEmit', '-p', 'web/tsconfig.json']);
  run(process.execPath, ['node_modules/vite/bin/vite.js', 'build', '--config', 'web/vite.config.ts']);
}

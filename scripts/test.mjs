// npm test: type-check and compile the server and its tests (into .build/) while the dashboard is
// type-checked and built (web/dist, which the e2e tests and the server need), then run every
// suite from the compiled copies (scripts/run-tests.mjs --compiled). Arguments go to the runner.
import { spawn } from 'node:child_process';

const step = (args) =>
  new Promise((resolve) => {
    const child = spawn(process.execPath, args, { stdio: 'inherit' });
    child.on('close', (code) => resolve(code ?? 1));
  });
const web = async () => (await step(['node_modules/typescript/bin/tsc', '--noEmit', '-p', 'web/tsconfig.json'])) || step(['node_modules/vite/bin/vite.js', 'build', '--config', 'web/vite.config.ts', '--logLevel', 'warn']);
const codes = await Promise.all([step(['node_modules/typescript/bin/tsc', '-p', 'tsconfig.test.json']), web()]);
if (codes.some((c) => c !== 0)) process.exit(1);
process.exit(await step(['scripts/run-tests.mjs', '--compiled', ...process.argv.slice(2)]));

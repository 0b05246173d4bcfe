// Runs test/**/*.test.ts with node's test runner (Node 20 has no --test globs).
//   node scripts/run-tests.mjs [paths…]              the sources, through tsx (one file or folder while working)
//   node scripts/run-tests.mjs --compiled [paths…]   their compiled copies in .build/ (npm test compiles them
//                                                    first: tsx compiling the sources again in every test
//                                                    process cost ~1.5 s of CPU a file)
// TEST_CONCURRENCY: test files run at once (3 by default: most of a file's time is spent waiting
// on servers and timers, not on the CPU).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';

const args = process.argv.slice(2);
const compiled = args.includes('--compiled');
const given = args.filter((a) => a !== '--compiled');
const roots = given.length ? given : ['test'];
const files = roots.flatMap((root) =>
  root.endsWith('.ts')
    ? [root]
    : readdirSync(root, { recursive: true })
        .map(String)
        .filter((f) => f.endsWith('.test.ts'))
        .map((f) => path.join(root, f)),
);
// The longest files start first, so that none of them is left running alone at the end.
const LONGEST = ['test/web/', 'test/package/', 'test/cli/', 'test/clients/', 'test/mcp/clients', 'test/admin/keys', 'test/cluster/'];
const rank = (f) => {
  const i = LONGEST.findIndex((p) => f.startsWith(p));
  return i < 0 ? LONGEST.length : i;
};
files.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
const targets = compiled ? files.map((f) => path.join('.build', f.replace(/\.ts$/, '.js'))) : files;
const missing = targets.filter((f) => !existsSync(f));
if (missing.length > 0) {
  console.error(`not compiled: ${missing.join(', ')} (run: npx tsc -p tsconfig.test.json)`);
  process.exit(2);
}
const concurrency = process.env.TEST_CONCURRENCY ?? '3';
const loader = compiled ? ['--enable-source-maps'] : ['--import', 'tsx'];
const r = spawnSync(process.execPath, [...loader, '--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...targets], { stdio: 'inherit' });
process.exit(r.status ?? 1);

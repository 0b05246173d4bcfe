import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where the test files run from: the repository, or its compiled copy in .build/ (npm test). */
export const compiledTests = fileURLToPath(import.meta.url).includes(`${path.sep}.build${path.sep}`);

/**
 * The node arguments that run one of the project's entry points (`src/server.ts`,
 * `src/cli.ts`): its compiled copy when the tests run compiled, else the source through tsx.
 */
export function entry(source: string): string[] {
  return compiledTests ? [path.resolve('.build', source.replace(/\.ts$/, '.js'))] : ['--import', 'tsx', path.resolve(source)];
}

/** The repository's root (the tests run from it, compiled or not). */
export const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), compiledTests ? '../../..' : '../..');

/** Helpers shared by the benchmarks that run the fake upstream and the gateway as processes. */
import { type ChildProcess, fork } from 'node:child_process';
import path from 'node:path';

/** Waits until a process's output matches `re` (its first group is returned). */
export async function waitFor(out: () => string, re: RegExp, what: string): Promise<string> {
  for (let i = 0; i < 600; i++) {
    const m = re.exec(out());
    if (m) return m[1]!;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} did not start:\n${out()}`);
}

/** The fake Tavily at 0 ms, alone in its process (added to `children`); resolves to its URL. */
export async function startFake(children: ChildProcess[]): Promise<string> {
  const fake = fork(path.resolve('test/support/fake-tavily.ts'), [], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, LATENCY_MS: '0', PORT: '0' },
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  });
  children.push(fake);
  let out = '';
  fake.stdout!.on('data', (d) => (out += d));
  return waitFor(() => out, /"url":"([^"]+)"/, 'fake Tavily');
}

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { entry } from './entry.js';

export interface Server {
  url: string;
  child: ChildProcess;
  exited: Promise<number | null>;
  output(): string;
}

/** Starts the real server entry in a process of its own, as `npm start` does (environment: only what is given). */
export async function startServer(env: Record<string, string>): Promise<Server> {
  const child = spawn(process.execPath, entry('src/server.ts'), {
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  let url = '';
  for (let i = 0; i < 300 && !url; i++) {
    url = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1] ?? '';
    if (!url) await new Promise((r) => setTimeout(r, 50));
  }
  if (!url) child.kill('SIGKILL');
  assert.ok(url, `server did not start:\n${out}`);
  return { url, child, exited, output: () => out };
}

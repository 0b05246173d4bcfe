import { fork } from 'node:child_process';
import { loadConfig } from '../src/config.js';
import { createContext } from '../src/context.js';
import { generateEncryptionKey, parseEncryptionKey } from '../src/crypto.js';
import { createLogger } from '../src/logger.js';
const child = fork('test/support/fake-tavily.ts', [], { execArgv: ['--import', 'tsx'], env: { ...process.env, LATENCY_MS: '200' }, stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
const url: string = await new Promise(r => child.stdout!.once('data', d => r(JSON.parse(String(d).split('\n')[0]!).url)));
const config = loadConfig({ DATA_DIR: '/tmp/cp-' + Date.now(), TAVILY_BASE_URL: url, REFRESH_CONCURRENCY: '1000' });
const ctx = await createContext(config, { adminToken: 'x'.repeat(20), encryptionKey: parseEncryptionKey(generateEncryptionKey()) }, createLogger('silent'));
await ctx.services.keys.add({ remote_addr: null, user_agent: 'bench' }, { inputs: Array.from({ length: 1000 }, (_, i) => `tvly-dev-bench${String(i).padStart(8, '0')}`), label: null, validate: false });
await ctx.parts.refresher.refresh();
for (let i = 0; i < 8; i++) { const r = await ctx.parts.refresher.refresh(); console.log(r.duration_ms, r.fetch_ms, r.write_ms); }
child.kill(); await ctx.close(); process.exit(0);

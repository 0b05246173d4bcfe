#!/usr/bin/env node
import path from 'node:path';
import { buildApp } from './app.js';
import { ConfigError, loadConfig } from './config.js';
import { createContext } from './context.js';
import { createLogger } from './logger.js';
import { ADMIN_TOKEN_FILE, resolveSecrets } from './secrets.js';

async function main(): Promise<void> {
  const config = loadConfig();
  const secrets = resolveSecrets(config);
  const log = createLogger(config.logLevel);
  const ctx = await createContext(config, secrets, log);
  const app = await buildApp(ctx);
  const scheduler = ctx.jobs;

  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) return;
    closing = true;
    log.info({ signal }, 'shutting down');
    const force = setTimeout(() => {
      log.error('shutdown took longer than 10 s; exiting');
      process.exit(1);
    }, 10_000);
    force.unref();
    // Requests in flight finish; keep-alive connections are closed as soon as they go idle
    // (Fastify closes only those idle at the moment close() starts), so that clients holding
    // connections open, like a load balancer, do not hold the shutdown.
    const reaper = setInterval(() => app.server.closeIdleConnections(), 100);
    scheduler.stop();
    let code = 0;
    try {
      await app.close();
      // The request log is flushed last, with every completed request in it.
      const { unwritten } = await ctx.close();
      if (unwritten > 0) {
        // Not a clean stop: the supervisor (systemd, docker) sees it, and the log says why.
        log.error({ unwritten_rows: unwritten }, 'exiting with request-log rows unwritten (see the flush errors above)');
        code = 1;
      }
    } catch (err) {
      log.error({ err }, 'shutdown failed');
      code = 1;
    } finally {
      clearInterval(reaper);
      process.exit(code);
    }
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));

  await app.listen({ port: config.port, host: config.host });
  scheduler.start();
  // Housekeeping at start: prune old log rows, and refresh stale keys unless told not to.
  void scheduler.runNow('prune-logs');
  if (config.refreshOnStart) void scheduler.runNow('refresh');
  if (config.database.kind === 'postgres' && !process.env.ADMIN_TOKEN) {
    log.warn('ADMIN_TOKEN is not set: this instance uses its own, from DATA_DIR. Instances behind one load balancer need the same ADMIN_TOKEN');
  }
  const where = config.database.kind === 'sqlite' ? config.database.file : 'PostgreSQL';
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  // 0.0.0.0 and :: listen everywhere; this machine reaches them as 127.0.0.1.
  const host = ['0.0.0.0', '::', ''].includes(config.host) ? '127.0.0.1' : config.host.includes(':') ? `[${config.host}]` : config.host;
  const base = `http://${host}:${port}`;
  const tokenFrom = process.env.ADMIN_TOKEN?.trim() ? 'the ADMIN_TOKEN environment variable' : path.join(config.dataDir, ADMIN_TOKEN_FILE);
  log.info({ port, host: config.host, database: where, dashboard: `${base}/` }, 'tavily-pool is serving');
  if (secrets.adminTokenGenerated) {
    process.stderr.write(
      `\n  tavily-pool generated an admin token (shown once; stored in ${tokenFrom}):\n\n    ${secrets.adminToken}\n\n` +
        `  Use it as:  Authorization: Bearer <token>   on /api/v1/admin/*\n`,
    );
  }
  process.stderr.write(
    `\n  tavily-pool is serving\n` +
      `    dashboard:    ${base}/   (sign in with the admin token)\n` +
      `    admin token:  ${tokenFrom}\n` +
      `    gateway:      ${base}   (Tavily SDKs: set the base URL to this, the API key to a client token)\n` +
      `    database:     ${where}\n\n`,
  );
}

main().catch((err) => {
  if (err instanceof ConfigError) {
    // A bad variable, or ENCRYPTION_KEY not matching the database's keys: name it.
    process.stderr.write(`tavily-pool: invalid configuration: ${err.message}\n`);
    process.exit(1);
  }
  process.stderr.write(`tavily-pool: failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});

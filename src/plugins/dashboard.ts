import fs from 'node:fs';
import path from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import { webDist } from '../paths.js';

/**
 * The dashboard's built files at `/`, one route each (no wildcard: unknown paths keep their
 * Tavily-shaped 404). Without a build, `/` says how to make one.
 */
export async function dashboard(app: FastifyInstance): Promise<void> {
  const dir = webDist();
  if (fs.existsSync(path.join(dir, 'index.html'))) {
    await app.register(fastifyStatic, { root: dir, wildcard: false, index: 'index.html', cacheControl: true, maxAge: '1h', schemaHide: true });
    return;
  }
  app.get('/', { schema: { hide: true } }, async (_req, reply) =>
    reply
      .type('text/html; charset=utf-8')
      .send('<!doctype html><title>tavily-pool</title><p>The dashboard is not built: run <code>npm run build:web</code> (or <code>npm start</code>, which builds it when missing).</p>'),
  );
}

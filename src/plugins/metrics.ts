import type { FastifyInstance } from 'fastify';
import { bearerToken, secretsEqual } from '../crypto.js';
import type { Metrics } from '../metrics.js';

/**
 * `GET /metrics`: the Prometheus text format, for a scraper. With METRICS_TOKEN set it takes
 * `Authorization: Bearer <METRICS_TOKEN>` (compared in constant time); without it, anyone who
 * can reach the port can read it (put it behind the network's own rules).
 */
export async function metrics(app: FastifyInstance, opts: { metrics: Metrics | null; token: string | null }): Promise<void> {
  const m = opts.metrics;
  if (!m) return;
  const token = opts.token;
  app.get('/metrics', { schema: { tags: ['health'], summary: 'Prometheus metrics', produces: ['text/plain'] } }, async (req, reply) => {
    if (token !== null) {
      const presented = bearerToken(req.headers.authorization);
      if (presented === null || !secretsEqual(presented, token)) {
        return reply
          .code(401)
          .header('www-authenticate', 'Bearer realm="tavily-pool metrics"')
          .type('text/plain; charset=utf-8')
          .send(presented === null ? 'missing token: send Authorization: Bearer <METRICS_TOKEN>\n' : 'wrong token: /metrics takes the METRICS_TOKEN\n');
      }
    }
    const text = await m.registry.metrics();
    return reply.type(m.registry.contentType).send(text);
  });
}

import { Type } from '@sinclair/typebox';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import type { Bus } from '../cluster/bus.js';
import { type Db, ping } from '../db/database.js';
import type { Outbox } from '../pool/outbox.js';

export interface HealthOptions {
  db: Db;
  /** Whether the gateway's state and request log are being written. */
  outbox: Pick<Outbox, 'health'>;
  bus: Bus;
}

const RequestLog = Type.Object(
  {
    failing: Type.Boolean(),
    failing_since: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    consecutive_failures: Type.Integer(),
    last_error: Type.Union([Type.String(), Type.Null()]),
    pending_rows: Type.Integer(),
    dropped_rows: Type.Integer(),
  },
  { description: 'whether the request log (and the credit spend with it) is being written' },
);

const Status = Type.Object({
  status: Type.String(),
  error: Type.Optional(Type.String()),
  request_log: Type.Optional(RequestLog),
  instance: Type.Optional(Type.String({ description: 'PostgreSQL: this instance’s id in change notices' })),
  sync: Type.Optional(
    Type.Union([Type.Literal('listening'), Type.Literal('reconnecting')], {
      description: 'PostgreSQL: whether this instance hears the others’ changes now (while reconnecting it still serves, and reads everything again once back)',
    }),
  ),
});

/** `/healthz` (the process is up) and `/readyz` (the database answers and takes the writes). No token. */
export async function health(root: FastifyInstance, opts: HealthOptions): Promise<void> {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  app.get('/healthz', { schema: { tags: ['health'], summary: 'The process is up', security: [], response: { 200: Status } } }, async () => ({
    status: 'ok',
  }));
  app.get(
    '/readyz',
    { schema: { tags: ['health'], summary: 'The database answers, and the request log is being written', security: [], response: { 200: Status, 503: Status } } },
    async (req, reply) => {
      const requestLog = opts.outbox.health;
      try {
        await ping(opts.db);
      } catch (err) {
        req.log.warn({ err }, 'readiness check: database unreachable');
        return reply.code(503).send({ status: 'unavailable', error: 'database unreachable', request_log: requestLog });
      }
      const bus = opts.bus;
      const cluster = bus.shared ? { instance: bus.instanceId, sync: bus.listening ? ('listening' as const) : ('reconnecting' as const) } : {};
      if (requestLog.failing) {
        // The database answers but refuses the writes (full, read-only, …): credits spent and
        // the log are not being stored.
        return reply.code(503).send({ status: 'unavailable', error: `the request log cannot be written: ${requestLog.last_error ?? 'unknown error'}`, request_log: requestLog, ...cluster });
      }
      return { status: 'ok', request_log: requestLog, ...cluster };
    },
  );
}

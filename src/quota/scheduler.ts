import { Cron } from 'croner';
import { sql } from 'kysely';
import type { Logger } from 'pino';
import type { Db, DialectKind } from '../db/database.js';

export interface Job {
  name: string;
  /** Cron expression, UTC. */
  cron: string;
  run: () => Promise<unknown>;
}

export type JobOutcome = 'ran' | 'overlap' | 'elsewhere' | 'failed';

/** Advisory-lock namespace for tavily-pool's jobs ('tpoo'). */
const LOCK_NAMESPACE = 0x74706f6f;

function lockId(name: string): number {
  let h = 0;
  for (const c of name) h = (Math.imul(h, 31) + c.charCodeAt(0)) | 0;
  return h;
}

/**
 * Runs the periodic jobs. A job whose previous run has not finished is skipped (and logged);
 * on PostgreSQL each run also holds a session advisory lock, so that exactly one of the
 * instances sharing the database runs it and the others skip it. On SQLite there is one
 * process, and the in-process guard is enough.
 */
export class Scheduler {
  readonly #jobs = new Map<string, Job>();
  readonly #crons: Cron[] = [];
  readonly #running = new Set<string>();

  constructor(private readonly deps: { db: Db; dialect: DialectKind; log: Logger }) {}

  add(job: Job): void {
    this.#jobs.set(job.name, job);
  }

  /** Starts every job's timer. */
  start(): void {
    for (const job of this.#jobs.values()) {
      this.#crons.push(new Cron(job.cron, { timezone: 'UTC', name: job.name }, () => void this.runNow(job.name)));
    }
  }

  stop(): void {
    for (const c of this.#crons) c.stop();
    this.#crons.length = 0;
  }

  /** Runs a job now, unless its previous run is still going here, or another instance runs it. */
  async runNow(name: string): Promise<JobOutcome> {
    const job = this.#jobs.get(name);
    if (!job) throw new Error(`no job named ${name}`);
    const log = this.deps.log.child({ job: name });
    if (this.#running.has(name)) {
      log.warn('the previous run has not finished: this run is skipped');
      return 'overlap';
    }
    this.#running.add(name);
    const t0 = performance.now();
    try {
      const outcome = await this.#exclusive(name, () => job.run());
      if (outcome === 'elsewhere') log.info('another instance is running this job: skipped here');
      else log.info({ ms: Math.round(performance.now() - t0) }, 'job finished');
      return outcome;
    } catch (err) {
      log.error({ err }, 'job failed');
      return 'failed';
    } finally {
      this.#running.delete(name);
    }
  }

  async #exclusive(name: string, run: () => Promise<unknown>): Promise<'ran' | 'elsewhere'> {
    if (this.deps.dialect !== 'postgres') {
      await run();
      return 'ran';
    }
    const id = lockId(name);
    // A session lock on one held connection: it lasts exactly as long as the run.
    return this.deps.db.connection().execute(async (conn) => {
      const got = await sql<{ ok: boolean }>`select pg_try_advisory_lock(${LOCK_NAMESPACE}::int, ${id}::int) as ok`.execute(conn);
      if (!got.rows[0]?.ok) return 'elsewhere';
      try {
        await run();
        return 'ran';
      } finally {
        await sql`select pg_advisory_unlock(${LOCK_NAMESPACE}::int, ${id}::int)`.execute(conn);
      }
    });
  }
}

import os from 'node:os';
import type { Static } from '@sinclair/typebox';
import type { InstanceObject } from '../schemas/logs.js';

/** An instance as `GET /instances` lists it (the schema says what each field means). */
export type InstanceView = Static<typeof InstanceObject>;
/** What an instance says of itself to the others (every 15 s over the change feed). */
export type InstanceInfo = Omit<InstanceView, 'self' | 'last_seen' | 'lost'>;

export const HEARTBEAT_MS = 15_000;
const LOST_AFTER_MS = 3 * HEARTBEAT_MS;
/** A lost instance is listed this long, then forgotten. */
const FORGET_AFTER_MS = 10 * 60_000;

/**
 * The instances of a deployment as this one knows them: itself, and the others from their
 * heartbeats on the change feed (no table, no write: a heartbeat is one NOTIFY). On SQLite it
 * is only itself.
 */
export class Instances {
  readonly #peers = new Map<string, { info: InstanceInfo; at: number }>();
  #timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly o: {
      self: () => InstanceInfo;
      /** Sends this instance's info to the others (null on SQLite). */
      announce: ((info: InstanceInfo) => Promise<void>) | null;
    },
  ) {}

  start(): void {
    if (!this.o.announce || this.#timer) return;
    const beat = () => void this.o.announce!(this.o.self());
    beat();
    this.#timer = setInterval(beat, HEARTBEAT_MS);
    this.#timer.unref();
  }

  /** Another instance's heartbeat; a newcomer gets ours at once, so that it need not wait for it. True for a newcomer. */
  heard(info: InstanceInfo, now = Date.now()): boolean {
    const known = this.#peers.has(info.id);
    this.#peers.set(info.id, { info, at: now });
    if (!known && this.o.announce) void this.o.announce(this.o.self());
    return !known;
  }

  /** This instance and the others heard lately (not lost). */
  live(now = Date.now()): number {
    let n = 1;
    for (const p of this.#peers.values()) if (now - p.at <= LOST_AFTER_MS) n++;
    return n;
  }

  list(now = Date.now()): InstanceView[] {
    const out: InstanceView[] = [{ ...this.o.self(), self: true, last_seen: new Date(now).toISOString(), lost: false }];
    for (const [id, p] of this.#peers) {
      if (now - p.at > FORGET_AFTER_MS) {
        this.#peers.delete(id);
        continue;
      }
      out.push({ ...p.info, self: false, last_seen: new Date(p.at).toISOString(), lost: now - p.at > LOST_AFTER_MS });
    }
    return out;
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }
}

export const HOST = os.hostname();

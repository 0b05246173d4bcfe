import type { Logger } from 'pino';
import type { Db } from '../db/database.js';
import { Slicer, chunks } from '../slices.js';
import type { Bus, SyncItem } from './bus.js';
import type { ClusterSync } from './sync.js';

/**
 * How this instance makes a stored change take effect everywhere: applied to its own memory
 * (in slices), and told to the other instances. Telling them is best effort: a failure is
 * logged, and their periodic full read (SYNC_INTERVAL_S) catches up.
 */
export class ChangeAnnouncer {
  constructor(
    private readonly o: {
      db: Db;
      /** The bus once it runs; null on SQLite (one process). */
      bus: () => Bus | null;
      sync: () => ClusterSync;
      log: Logger;
    },
  ) {}

  /** Tells the other instances. */
  async announce(items: SyncItem[]): Promise<void> {
    const bus = this.o.bus();
    if (!bus || items.length === 0) return;
    try {
      await bus.publish(this.o.db, items);
    } catch (err) {
      this.o.log.error({ err }, 'could not tell the other instances about a change; they will read it within SYNC_INTERVAL_S');
    }
  }

  /** Changes already stored: this instance applies them (in slices), and the others are told. */
  async applyAndAnnounce(items: SyncItem[]): Promise<void> {
    const sync = this.o.sync();
    const slicer = new Slicer();
    for (const part of chunks(items, 2000)) {
      sync.apply(part);
      await slicer.breathe();
    }
    await this.announce(items);
  }
}

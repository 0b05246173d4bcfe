import type { Logger } from 'pino';
import type { Db } from '../db/database.js';
import { Slicer, chunks } from '../slices.js';
import type { Bus, SyncItem } from './bus.js';
import { keyChangeItems } from './sync.js';

/**
 * How a stored change takes effect everywhere: this instance applies it to its memory (in
 * slices), and the other instances are told. Telling them is best effort: a failure is logged,
 * and their periodic full read (SYNC_INTERVAL_S) catches up. The admin services call it after
 * their transaction commits; the refresh after its write.
 */
export class ChangeFeed {
  constructor(
    private readonly o: {
      db: Db;
      bus: Bus;
      /** Applies changes to this instance's memory, as if another instance had sent them. */
      apply(items: SyncItem[]): void;
      /** Reads keys into the pool again: all of them, or only `ids`. */
      reloadPool(ids?: readonly number[]): Promise<void>;
      /** Reads the client tokens into memory again. */
      reloadTokens(): Promise<void>;
      log: Logger;
    },
  ) {}

  /** Tells the other instances. */
  async announce(items: SyncItem[]): Promise<void> {
    if (!this.o.bus.shared || items.length === 0) return;
    try {
      await this.o.bus.publish(this.o.db, items);
    } catch (err) {
      this.o.log.error({ err }, 'could not tell the other instances about a change; they will read it within SYNC_INTERVAL_S');
    }
  }

  /** Changes already stored: this instance applies them (in slices), and the others are told. */
  async applyAndAnnounce(items: SyncItem[]): Promise<void> {
    const slicer = new Slicer();
    for (const part of chunks(items, 2000)) {
      this.o.apply(part);
      await slicer.breathe();
    }
    await this.announce(items);
  }

  /** Keys were changed (these, or all): read again here, and the others are told to. */
  async keys(ids?: readonly number[]): Promise<void> {
    await this.o.reloadPool(ids);
    await this.announce(keyChangeItems(ids));
  }

  /** Accounts' rooms changed (keys joined or left them): applied here, and told to the others. */
  accounts(rooms: ReadonlyMap<number, number | null>): Promise<void> {
    return this.applyAndAnnounce([...rooms].map(([id, remaining]): SyncItem => ['a', id, remaining]));
  }

  /** Client tokens were changed: as keys. */
  async tokens(): Promise<void> {
    await this.o.reloadTokens();
    await this.announce([['T']]);
  }
}

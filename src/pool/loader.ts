import type { Logger } from 'pino';
import { KeyDecryptError } from '../crypto.js';
import { cycleStart } from '../cycles.js';
import type { KeyRepository } from '../db/repositories/keys.js';
import { Slicer, chunks, forEachSliced } from '../slices.js';
import type { PlainKeyCache } from './key-cache.js';
import type { KeyPool, PoolEntry } from './pool.js';

export interface PoolLoaderDeps {
  keys: KeyRepository;
  plainKeys: PlainKeyCache;
  pool: KeyPool;
  /** Runs before the read: pending deductions are written first, so that the figures read back include them. */
  beforeRead: () => Promise<void>;
  log: Logger;
}

/**
 * Reads keys from the database into the in-memory pool: all of them (a full read replaces the
 * pool: keys no longer stored go), or only `ids`. Decrypting and applying run in slices, a
 * thousand keys at a time, so that a pool of 100,000 keys read again (every SYNC_INTERVAL_S on
 * PostgreSQL) does not hold the event loop.
 */
export class PoolLoader {
  constructor(private readonly d: PoolLoaderDeps) {}

  async load(ids?: readonly number[]): Promise<void> {
    const { keys, plainKeys, pool, log } = this.d;
    await this.d.beforeRead();
    const rows = await keys.loadForPool(ids);
    const entries: PoolEntry[] = [];
    // Decrypting keys not cached yet takes a few microseconds each: in slices.
    await forEachSliced(rows, (r) => {
      let plain: string;
      try {
        plain = plainKeys.get(r.id, r.key_ciphertext);
      } catch (err) {
        if (!(err instanceof KeyDecryptError)) throw err;
        log.error({ key_id: r.id }, 'a stored key cannot be decrypted (was ENCRYPTION_KEY changed?); it is left out of the pool');
        return;
      }
      entries.push({
        id: r.id,
        plain,
        masked: r.key_masked,
        health: r.status,
        enabled: r.disabled_at === null,
        remaining: r.remaining_quota,
        lastUsed: r.last_used_at ? Date.parse(r.last_used_at) : 0,
        coolUntil: r.cooldown_until ? Date.parse(r.cooldown_until) : 0,
        accountId: r.account_id,
        accountRemaining: r.account_remaining,
        // An account's keys renew with it: its cycle when seen, else the key's own.
        cycleStartedAt: cycleStart(r.account_cycle_started_at ?? r.cycle_started_at),
      });
    });
    const found = new Set(rows.map((r) => r.id));
    const gone = (ids ?? pool.ids()).filter((id) => !found.has(id));
    if (!ids) plainKeys.retain(found);
    const slicer = new Slicer();
    for (const part of chunks(gone, 1000)) {
      pool.update([], part);
      await slicer.breathe();
    }
    for (const part of chunks(entries, 1000)) {
      pool.update(part);
      await slicer.breathe();
    }
  }
}


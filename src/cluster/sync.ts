import type { Logger } from 'pino';
import type { AccountRefreshWrite } from '../db/repositories/accounts.js';
import type { RefreshWrite } from '../db/repositories/keys.js';
import type { BudgetLedger, LevelItem } from '../gateway/budget.js';
import type { ResearchRegistry } from '../gateway/research.js';
import type { TokenRegistry } from '../gateway/tokens.js';
import type { FlushedChanges } from '../pool/outbox.js';
import type { KeyStates } from '../pool/key-states.js';
import type { SyncItem } from './bus.js';
import type { InstanceInfo } from './instances.js';

/** More keys than this in one admin change are announced as "many keys": one full re-read. */
const MAX_LISTED_IDS = 1000;

/**
 * What a write-behind flush tells the other instances. `levels`: this instance's budget figure
 * per token once the flush commits, each placed right after its token's spend, so that the two
 * travel in one notice and are applied together.
 */
export function flushItems(c: FlushedChanges, levels: readonly LevelItem[] = []): SyncItem[] {
  const items: SyncItem[] = [];
  for (const [id, credits] of c.keys) items.push(['k', id, credits]);
  const level = new Map(levels.map((v) => [v[2], v]));
  for (const [id, month, credits] of c.tokens) {
    items.push(['t', id, month, credits]);
    const v = level.get(id);
    if (v) items.push(v);
  }
  for (const [id, health] of c.health) items.push(['h', id, health]);
  for (const [id, until] of c.cool) items.push(['c', id, until]);
  for (const [id, remaining] of c.accounts) items.push(['a', id, remaining]);
  for (const requestId of c.charged) items.push(['R', requestId]);
  return items;
}

/** What a refresh tells the other instances: the same outcomes it applied to its own pool. */
export function refreshItems(writes: readonly RefreshWrite[], accounts: readonly AccountRefreshWrite[] = []): SyncItem[] {
  const items: SyncItem[] = [];
  // Accounts first: a key's new figure is then ranked against its account's new room.
  for (const a of accounts) items.push(['a', a.id, a.remaining]);
  for (const w of writes) {
    if (w.ok) items.push(['r', w.id, w.status, w.remaining_quota]);
    else if (w.status !== null) items.push(['r', w.id, w.status]);
  }
  return items;
}

/** An admin change to keys: these ids, or every key when there are many (or `undefined`). */
export function keyChangeItems(ids?: readonly number[]): SyncItem[] {
  if (!ids || ids.length > MAX_LISTED_IDS) return [['K', null]];
  return ids.map((id): SyncItem => ['K', id]);
}

export interface ClusterSyncDeps {
  /** Changes other instances stored are applied through it. */
  keyStates: KeyStates;
  tokens: TokenRegistry;
  /** Other instances' outstanding credits per token are applied to it. */
  budget: BudgetLedger;
  research: ResearchRegistry;
  /** Reads keys from the database into the pool: these, or all of them. */
  reloadPool(ids?: readonly number[]): Promise<void>;
  reloadTokens(): Promise<void>;
  log: Logger;
  /** The safety net: everything is read again this often, whatever was heard. */
  intervalMs: number;
  /** Another instance's heartbeat. */
  onInstance?: (info: InstanceInfo) => void;
}

/**
 * Applies what other instances announce (and this instance's own refresh outcomes) to its
 * memory: spend, health, cooldowns and refresh figures straight from the items (no query),
 * admin changes by reading the changed rows.
 * Reads are serialised and merged: a burst of notices costs one read. Every `intervalMs`,
 * and after the listening connection was lost, everything is read again.
 */
export class ClusterSync {
  #timer: NodeJS.Timeout | null = null;
  #allKeys = false;
  readonly #keyIds = new Set<number>();
  #tokens = false;
  #draining: Promise<void> | null = null;
  readonly stats = { items: 0, reloads: 0, failures: 0 };

  constructor(private readonly deps: ClusterSyncDeps) {}

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => this.resync(), this.deps.intervalMs);
    this.#timer.unref();
  }

  apply(items: readonly SyncItem[]): void {
    const { tokens } = this.deps;
    const stored = this.deps.keyStates.stored;
    for (const item of items) {
      this.stats.items++;
      switch (item[0]) {
        case 'k':
          stored.spent(item[1], item[2]);
          break;
        case 't':
          tokens.addSpend(item[1], item[2], item[3]);
          break;
        case 'h':
          stored.health(item[1], item[2]);
          break;
        case 'c':
          stored.rest(item[1], item[2]);
          break;
        case 'r':
          stored.refreshed(item[1], item[2], item.length === 4 ? item[3] : undefined);
          break;
        case 'a':
          stored.account(item[1], item[2]);
          break;
        case 'R':
          this.deps.research.markCharged(item[1]);
          break;
        case 'K':
          if (item[1] === null) this.#allKeys = true;
          else this.#keyIds.add(item[1]);
          break;
        case 'T':
          this.#tokens = true;
          break;
        case 'I':
          this.deps.onInstance?.(item[1]);
          break;
        case 'v':
          this.deps.budget.remoteLevel(item[1], item[2], item[3]);
          break;
      }
    }
    if (this.#allKeys || this.#keyIds.size > 0 || this.#tokens) void this.#drain();
  }

  /** Reads every key and token again. */
  resync(): Promise<void> {
    this.#allKeys = true;
    this.#tokens = true;
    return this.#drain();
  }

  /** Resolves when every read asked for so far is done. */
  settled(): Promise<void> {
    return this.#draining ?? Promise.resolve();
  }

  #drain(): Promise<void> {
    this.#draining ??= (async () => {
      try {
        while (this.#allKeys || this.#keyIds.size > 0 || this.#tokens) {
          const all = this.#allKeys;
          const ids = [...this.#keyIds];
          const tokens = this.#tokens;
          this.#allKeys = false;
          this.#keyIds.clear();
          this.#tokens = false;
          try {
            if (all) await this.deps.reloadPool();
            else if (ids.length > 0) await this.deps.reloadPool(ids);
            if (tokens) await this.deps.reloadTokens();
            this.stats.reloads++;
          } catch (err) {
            this.stats.failures++;
            this.deps.log.error({ err }, 'could not read the changes of other instances; the next periodic read retries');
            break;
          }
        }
      } finally {
        this.#draining = null;
      }
    })();
    return this.#draining;
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }
}

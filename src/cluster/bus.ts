import { createHash, randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import pg from 'pg';
import type { Logger } from 'pino';
import type { Db } from '../db/database.js';
import type { KeyHealth } from '../db/schema.js';
import type { LevelItem } from '../gateway/budget.js';
import type { InstanceInfo } from './instances.js';

/**
 * One change another instance must apply to its in-memory state. Short tuples, because a
 * NOTIFY payload holds at most 8,000 bytes.
 */
export type SyncItem =
  /** A key spent credits. */
  | ['k', id: number, credits: number]
  /** A token spent credits in a month (`YYYY-MM`). */
  | ['t', id: number, month: string, credits: number]
  /** A key's health changed (Tavily answered 401, 432 or 433). */
  | ['h', id: number, health: KeyHealth]
  /** A key rests until this epoch ms (Tavily answered 429). */
  | ['c', id: number, untilMs: number]
  /** A refresh's outcome for a key: its health, and its remaining credits when they are known. */
  | ['r', id: number, health: KeyHealth]
  | ['r', id: number, health: KeyHealth, remaining: number | null]
  /** What an account can still spend now (a refresh read it, or Tavily said it ran out). */
  | ['a', id: number, remaining: number | null]
  /** A research task was billed: no other instance bills it again. */
  | ['R', requestId: string]
  /** An admin changed this key (or, with null, many keys): read it again. */
  | ['K', id: number | null]
  /** An admin changed the client tokens: read them again. */
  | ['T']
  /** An instance's heartbeat: what it says of itself. */
  | ['I', info: InstanceInfo]
  /** What an instance has outstanding against a token's budget (held, waiting, charged but not flushed). */
  | LevelItem;

export interface BusHandlers {
  /** Changes published by another instance. */
  onItems(items: SyncItem[]): void;
  /** How long a notice took from its sender's publish to here (ms; clocks of the two machines permitting). */
  onLag?(ms: number): void;
  /** Notifications may have been missed (the listening connection was lost): read everything again. */
  onResync(): void;
  /**
   * This instance's own notice came back (its sequence number): every notice ordered before it
   * has been heard (PostgreSQL delivers notices to every listener in one order).
   */
  onEcho?(seq: number): void;
}

/** How instances tell each other what changed. */
export interface Bus {
  readonly instanceId: string;
  /** Whether other instances share the database (PostgreSQL); false for the one process of SQLite. */
  readonly shared: boolean;
  /** Whether notices from the other instances are heard now. */
  readonly listening: boolean;
  /** Since when (epoch ms) they are not heard; null while listening. */
  readonly lostSince: number | null;
  /** Sends the items to the other instances; inside a transaction they go out when it commits. */
  publish(ex: Db, items: readonly SyncItem[]): Promise<void>;
  /**
   * Sends the items, saying at once the sequence number of the last notice that carries them
   * (0 when none is sent), so that its echo can be recognised however soon it comes back.
   */
  post(ex: Db, items: readonly SyncItem[]): { seq: number; sent: Promise<void> };
  close(): Promise<void>;
}

/** PostgreSQL refuses a NOTIFY payload of 8,000 bytes or more. */
const MAX_PAYLOAD = 7800;

/** Packs items into as few payloads as fit under the limit, in order. */
export function encodeItems(instanceId: string, seq: () => number, items: readonly SyncItem[], max = MAX_PAYLOAD): string[] {
  const out: string[] = [];
  let parts: string[] = [];
  let size = 0;
  // `t`: when it was sent (epoch ms), so that a receiver can tell how long a change took to reach it.
  const head = () => `{"s":${JSON.stringify(instanceId)},"n":${seq()},"t":${Date.now()},"i":[`;
  // The envelope with room for a 16-digit sequence number and a time, and the closing `]}`.
  const budget = max - `{"s":${JSON.stringify(instanceId)},"n":${'9'.repeat(16)},"t":${'9'.repeat(16)},"i":[]}`.length;
  for (const item of items) {
    const text = JSON.stringify(item);
    if (parts.length > 0 && size + 1 + text.length > budget) {
      out.push(`${head()}${parts.join(',')}]}`);
      parts = [];
      size = 0;
    }
    parts.push(text);
    size += text.length + (parts.length > 1 ? 1 : 0);
  }
  if (parts.length > 0) out.push(`${head()}${parts.join(',')}]}`);
  return out;
}

/**
 * A payload: another instance's items and when they were sent (epoch ms, when it says), or
 * this instance's own notice come back (`own`: its sequence number); null when it is not one of ours.
 */
export function decodeMessage(instanceId: string, payload: string): { items: SyncItem[]; sentAt: number | null } | { own: number } | null {
  let msg: unknown;
  try {
    msg = JSON.parse(payload);
  } catch {
    return null;
  }
  if (typeof msg !== 'object' || msg === null) return null;
  const { s, i, t, n } = msg as { s?: unknown; i?: unknown; t?: unknown; n?: unknown };
  if (typeof s !== 'string' || !Array.isArray(i)) return null;
  if (s === instanceId) return typeof n === 'number' ? { own: n } : null;
  return { items: i.filter((x): x is SyncItem => Array.isArray(x) && typeof x[0] === 'string'), sentAt: typeof t === 'number' ? t : null };
}

/** The items of a payload sent by another instance, or null (our own, or not one of ours). */
export function decodePayload(instanceId: string, payload: string): SyncItem[] | null {
  const m = decodeMessage(instanceId, payload);
  return m && 'items' in m ? m.items : null;
}

/**
 * LISTEN/NOTIFY on the shared PostgreSQL database: one connection of its own listens; notices
 * are sent with `pg_notify` on whatever connection (or transaction) publishes. The channel is
 * named after the schema, so deployments in separate schemas of one database stay apart.
 * A lost connection is reopened with backoff, and then every instance state is read again,
 * since PostgreSQL does not keep notices for a listener that was away.
 */
export class PgBus implements Bus {
  readonly instanceId = randomBytes(6).toString('hex');
  readonly shared = true;
  #channel = '';
  #client: pg.Client | null = null;
  #closed = false;
  #seq = 0;
  #retry: NodeJS.Timeout | null = null;
  #backoffMs = 250;
  #lostSince: number | null = null;

  #handlers: BusHandlers | null = null;

  constructor(private readonly opts: { url: string; searchPath?: string; log: Logger }) {}

  /**
   * Connects and listens, handing what it hears to `handlers`; throws when the first connection
   * fails, so that a bad set-up stops the start. Until then, nothing is sent or heard.
   */
  async listen(handlers: BusHandlers): Promise<void> {
    this.#handlers = handlers;
    await this.#connect();
    this.opts.log.info({ instance: this.instanceId, channel: this.#channel }, 'listening for changes from other instances');
  }

  get channel(): string {
    return this.#channel;
  }

  get listening(): boolean {
    return this.#client !== null;
  }

  get lostSince(): number | null {
    return this.#client === null && !this.#closed ? (this.#lostSince ?? Date.now()) : null;
  }

  async #connect(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.opts.url,
      ...(this.opts.searchPath ? { options: `-c search_path=${this.opts.searchPath}` } : {}),
    });
    client.on('error', (err) => this.#lost(client, err));
    client.on('end', () => this.#lost(client));
    try {
      await client.connect();
      const { rows } = await client.query<{ schema: string }>('select current_schema() as schema');
      const schema = rows[0]?.schema ?? 'public';
      const channel = `tavily_pool_${createHash('sha256').update(schema).digest('hex').slice(0, 16)}`;
      await client.query(`listen ${channel}`);
      client.on('notification', (n) => {
        if (n.channel !== this.#channel || !n.payload) return;
        const msg = decodeMessage(this.instanceId, n.payload);
        if (!msg) return;
        if ('own' in msg) {
          this.#handlers!.onEcho?.(msg.own);
          return;
        }
        if (msg.items.length === 0) return;
        try {
          if (msg.sentAt !== null) this.#handlers!.onLag?.(Date.now() - msg.sentAt);
          this.#handlers!.onItems(msg.items);
        } catch (err) {
          // Never into the driver's parser: a throw there would take the connection down.
          this.opts.log.error({ err }, 'could not apply a change from another instance; the next full read corrects it');
        }
      });
      this.#channel = channel;
      this.#client = client;
      this.#lostSince = null;
      this.#backoffMs = 250;
    } catch (err) {
      client.removeAllListeners('end');
      await client.end().catch(() => {});
      throw err;
    }
  }

  #lost(client: pg.Client, err?: Error): void {
    if (this.#client !== client) return;
    this.#client = null;
    client.removeAllListeners('notification');
    if (this.#closed) return;
    this.#lostSince = Date.now();
    this.opts.log.warn({ err }, 'lost the connection that listens for other instances; reconnecting');
    client.end().catch(() => {});
    this.#reconnect();
  }

  #reconnect(): void {
    if (this.#closed || this.#retry) return;
    this.#retry = setTimeout(async () => {
      this.#retry = null;
      try {
        await this.#connect();
        this.opts.log.info('listening for other instances again; reading the shared state');
        this.#handlers!.onResync();
      } catch (err) {
        this.#backoffMs = Math.min(this.#backoffMs * 2, 5000);
        this.opts.log.warn({ err, retry_in_ms: this.#backoffMs }, 'cannot listen for other instances yet');
        this.#reconnect();
      }
    }, this.#backoffMs);
    this.#retry.unref();
  }

  publish(ex: Db, items: readonly SyncItem[]): Promise<void> {
    return this.post(ex, items).sent;
  }

  post(ex: Db, items: readonly SyncItem[]): { seq: number; sent: Promise<void> } {
    if (items.length === 0 || !this.#channel) return { seq: 0, sent: Promise.resolve() };
    const payloads = encodeItems(this.instanceId, () => ++this.#seq, items);
    // One statement whatever the number of payloads.
    const sent = sql`select pg_notify(${this.#channel}, p) from unnest(cast(${payloads} as text[])) as p`.execute(ex).then(() => {});
    return { seq: this.#seq, sent };
  }

  /** Drops the listening connection (tests use it to act out a network failure). */
  dropConnectionForTest(): void {
    this.#client?.emit('error', new Error('connection dropped by a test'));
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#retry) clearTimeout(this.#retry);
    const c = this.#client;
    this.#client = null;
    if (c) {
      c.removeAllListeners();
      c.on('error', () => {});
      await c.end().catch(() => {});
    }
  }
}

/** SQLite: one process, nobody to tell. */
export class LocalBus implements Bus {
  readonly instanceId = randomBytes(6).toString('hex');
  readonly shared = false;
  readonly listening = true;
  readonly lostSince = null;

  async publish(): Promise<void> {}

  post(): { seq: number; sent: Promise<void> } {
    return { seq: 0, sent: Promise.resolve() };
  }

  async close(): Promise<void> {}
}

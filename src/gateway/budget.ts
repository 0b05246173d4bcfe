import { count } from '../text.js';
import type { TokenRegistry, TokenState } from './tokens.js';

/** Credits a call holds against its token's monthly budget, from admission until its answer is accounted. */
export interface Hold {
  readonly tokenId: number;
  readonly credits: number;
  /** Still held: settling or releasing ends it, once. */
  open: boolean;
}

export type Reservation = { ok: true; hold: Hold | null } | { ok: false; message: string };

/**
 * What one instance has outstanding against a token's budget (held, waiting, charged but not
 * yet flushed), as it tells the others over the change feed: `['v', instance, token, credits]`.
 */
export type LevelItem = ['v', instance: string, tokenId: number, credits: number];

/** The change feed, as the ledger uses it (PostgreSQL; absent on SQLite, where one process serves). */
export interface BudgetFeed {
  readonly instanceId: string;
  /** Whether notices are heard now. */
  readonly listening: boolean;
  /**
   * Sends the items: says at once the sequence number of the notice that carries them (its
   * echo may be read before the send's own answer), and when it was sent.
   */
  post(items: LevelItem[]): { seq: number; sent: Promise<void> };
  /** How many instances share the budgets: this one and the others heard lately. */
  instances(): number;
}

export interface BudgetLedgerOptions {
  tokens: TokenRegistry;
  /** The change feed (clusters); null on one instance. */
  feed?: BudgetFeed | null;
  /**
   * CLUSTER_BUDGET_SLACK: credits of one token an instance may hold before the change feed has
   * carried them back to it. 0: every reservation waits for its notice to come back (exact);
   * more: the instances together overshoot a budget by at most (instances − 1) × slack.
   */
  slack?: number;
  /** How long a reservation waits for its notice before it is decided on this instance's share. */
  echoTimeoutMs?: number;
}

/** Another instance's figure is ignored once that instance has not been heard for this long (its heartbeat comes every 15 s). */
const PEER_LOST_MS = 45_000;

interface Waiter {
  credits: number;
  /** Resolves a call waiting for the feed; null for a call admitted on slack (only counted until confirmed). */
  resolve: ((r: Reservation) => void) | null;
  token: TokenState;
}

interface Book {
  readonly tokenId: number;
  /** Credits held by admitted calls here. */
  held: number;
  /** Credits of calls waiting for the change feed to decide them. */
  pending: number;
  /** Credits held on slack whose notice has not come back yet. */
  unconfirmed: number;
  /** Credits charged here and not yet in a committed flush (the others learn them from its notice). */
  unflushed: number;
  /** The other instances' outstanding credits for this token. */
  readonly remote: Map<string, number>;
}

/** Reservations sent in one notice, decided when it comes back. */
interface Batch {
  waiters: Array<Waiter & { book: Book }>;
  seq: number;
  timer: NodeJS.Timeout | null;
}

/**
 * The one admission of a token's monthly budget. Before a call is forwarded it reserves the
 * most the call can cost (its endpoint's `max`); it is refused when the budget less what is
 * spent and what is held cannot cover that. The answer settles the reservation: its real cost
 * is charged and the hold released, in one step, so that `spent + held` never passes the
 * budget on one instance, whatever the concurrency or batching.
 *
 * Across instances (PostgreSQL) each tells the others what it has outstanding per token, and a
 * reservation is decided when its own notice comes back over the change feed: PostgreSQL
 * delivers notices in one order to every listener, so each reservation is decided knowing every
 * reservation ordered before it, and two instances never both take the last credits. With
 * CLUSTER_BUDGET_SLACK an instance may hold that many credits per token before its notice comes
 * back (no wait), and the budget may be overshot by at most (instances − 1) × slack. While the
 * feed is lost, an instance spends at most its share (1 / instances) of what is left.
 */
export class BudgetLedger {
  readonly #books = new Map<number, Book>();
  readonly #tokens: TokenRegistry;
  readonly #feed: BudgetFeed | null;
  readonly #slack: number;
  readonly #echoTimeoutMs: number;
  /** Other instances by when they were last heard (their figures count while they are). */
  readonly #peers = new Map<string, number>();
  /** Books whose figure changed since the last notice. */
  readonly #dirty = new Set<Book>();
  /** Reservations made since the last notice was sent. */
  #unsent: Batch['waiters'] = [];
  /**
   * Notices sent, waiting to come back. Sequence numbers do not come back in order (a flush's
   * notice commits with its transaction), so each batch waits for its own.
   */
  readonly #inFlight = new Map<number, Batch>();
  #scheduled = false;
  readonly stats = { reserved: 0, refused: 0, waited: 0, sharedDecisions: 0 };

  constructor(o: BudgetLedgerOptions) {
    this.#tokens = o.tokens;
    this.#feed = o.feed ?? null;
    this.#slack = o.slack ?? 0;
    this.#echoTimeoutMs = o.echoTimeoutMs ?? 2000;
  }

  #book(tokenId: number): Book {
    let b = this.#books.get(tokenId);
    if (!b) {
      b = { tokenId, held: 0, pending: 0, unconfirmed: 0, unflushed: 0, remote: new Map() };
      this.#books.set(tokenId, b);
    }
    return b;
  }

  /** What the other instances have outstanding for the token (instances not heard lately left out). */
  #remote(b: Book, now: number): number {
    if (b.remote.size === 0) return 0;
    let n = 0;
    for (const [peer, credits] of b.remote) if (now - (this.#peers.get(peer) ?? 0) < PEER_LOST_MS) n += credits;
    return n;
  }

  /** Credits of the token's budget not spent nor held anywhere, as this instance knows now. */
  left(t: TokenState, now = Date.now()): number | null {
    if (t.budget === null) return null;
    this.#tokens.rollMonth(t, now);
    const b = this.#books.get(t.id);
    return t.budget - t.spent - (b ? b.held + b.pending + this.#remote(b, now) : 0);
  }

  /** Credits held by calls in flight here (and waiting ones). */
  held(tokenId: number): number {
    const b = this.#books.get(tokenId);
    return b ? b.held + b.pending : 0;
  }

  #refusal(t: TokenState, credits: number, left: number): Reservation {
    this.stats.refused++;
    const budget = t.budget!;
    if (t.spent >= budget) return { ok: false, message: `This token's monthly budget of ${count(budget, 'credit')} is used up (${t.spent} spent in ${t.month}).` };
    const held = Math.max(0, budget - t.spent - left);
    return {
      ok: false,
      message: `This request may cost up to ${count(credits, 'credit')}; this token has ${Math.max(0, left)} of its monthly budget of ${count(budget, 'credit')} left (${t.spent} spent in ${t.month}${held > 0 ? `, ${held} held by requests in flight` : ''}).`,
    };
  }

  /**
   * Reserves `credits` of the token's budget, or refuses. A token without a budget holds
   * nothing. `covered`: a hold that already pays for this call (a research task's, for its
   * polls), which then need only find the budget not overspent. Synchronous on one instance;
   * in a cluster, a reservation beyond the slack resolves when its notice comes back.
   */
  reserve(t: TokenState, credits: number, covered: Hold | null = null, now = Date.now()): Reservation | Promise<Reservation> {
    let left = this.left(t, now);
    if (left === null) return OK_NONE;
    if (covered?.open) left += covered.credits;
    if (credits > left || left < 0) return this.#refusal(t, credits, left);
    if (credits === 0) return OK_NONE;
    const b = this.#book(t.id);
    const feed = this.#feed;
    this.stats.reserved++;
    if (!feed) return this.#hold(b, credits);
    if (!feed.listening) return this.#byShare(t, b, credits, now);
    if (b.unconfirmed + credits <= this.#slack) {
      b.unconfirmed += credits;
      this.#unsent.push({ credits, resolve: null, token: t, book: b });
      this.#changed(b);
      return this.#hold(b, credits);
    }
    this.stats.waited++;
    b.pending += credits;
    this.#changed(b);
    return new Promise<Reservation>((resolve) => this.#unsent.push({ credits, resolve, token: t, book: b }));
  }

  #hold(b: Book, credits: number): Reservation {
    b.held += credits;
    return { ok: true, hold: { tokenId: b.tokenId, credits, open: true } };
  }

  /** Without the feed: at most this instance's share of what is left. */
  #byShare(t: TokenState, b: Book, credits: number, now: number): Reservation {
    this.stats.sharedDecisions++;
    const left = this.left(t, now)!;
    const share = Math.floor((left + b.held + b.pending) / Math.max(1, this.#feed!.instances())) - b.held - b.pending;
    if (credits > share) return this.#refusal(t, credits, Math.min(left, share));
    this.#changed(b);
    return this.#hold(b, credits);
  }

  /**
   * Ends a hold and charges what the call cost, in one step (either may be absent: a call of
   * a token without a budget holds nothing; a refused or failed call costs nothing).
   */
  settle(t: TokenState | undefined, hold: Hold | null, credits: number, now = Date.now()): void {
    let b: Book | undefined;
    if (hold?.open) {
      hold.open = false;
      b = this.#book(hold.tokenId);
      b.held -= hold.credits;
    }
    if (credits > 0 && t) {
      this.#tokens.charge(t, credits, now);
      if (this.#feed && t.budget !== null) {
        b ??= this.#book(t.id);
        b.unflushed += credits;
      }
    }
    if (b) this.#changed(b);
  }

  /** Ends a hold, charging nothing. */
  release(hold: Hold | null): void {
    this.settle(undefined, hold, 0);
  }

  // ---- the change feed ----

  #changed(b: Book): void {
    if (!this.#feed) return;
    this.#dirty.add(b);
    if (this.#scheduled) return;
    this.#scheduled = true;
    // One notice per turn of the event loop, however many calls reserved in it.
    setImmediate(() => this.#send());
  }

  #send(): void {
    this.#scheduled = false;
    const feed = this.#feed!;
    const items: LevelItem[] = [];
    for (const b of this.#dirty) items.push(['v', feed.instanceId, b.tokenId, b.held + b.pending + b.unflushed]);
    this.#dirty.clear();
    const waiters = this.#unsent;
    this.#unsent = [];
    if (items.length === 0 && waiters.length === 0) return;
    let post: { seq: number; sent: Promise<void> };
    try {
      post = feed.post(items);
    } catch {
      post = { seq: 0, sent: Promise.reject(new Error('not sent')) };
    }
    if (waiters.length === 0) {
      post.sent.catch(() => {});
      return;
    }
    const batch: Batch = { waiters, seq: post.seq, timer: null };
    this.#inFlight.set(batch.seq, batch);
    batch.timer = setTimeout(() => this.#decide(batch, 'share'), this.#echoTimeoutMs);
    batch.timer.unref();
    post.sent.catch(() => this.#decide(batch, 'share'));
  }

  /**
   * This instance's own notice came back over the feed: every notice ordered before it has been
   * heard, so the reservations it carried are decided now, knowing every one ordered earlier.
   */
  echoed(seq: number): void {
    const batch = this.#inFlight.get(seq);
    if (batch) this.#decide(batch, 'feed');
  }

  #decide(batch: Batch, how: 'feed' | 'share'): void {
    if (this.#inFlight.get(batch.seq) !== batch) return;
    this.#inFlight.delete(batch.seq);
    if (batch.timer) clearTimeout(batch.timer);
    const now = Date.now();
    for (const w of batch.waiters) {
      const b = w.book;
      if (!w.resolve) {
        b.unconfirmed -= w.credits;
        continue;
      }
      b.pending -= w.credits;
      if (how === 'share') {
        w.resolve(this.#byShare(w.token, b, w.credits, now));
        continue;
      }
      // Everything ordered before this notice is known: what others hold (their figures heard),
      // what this instance holds. Its own later reservations are decided after, knowing this one.
      const left = this.left(w.token, now)! + b.pending;
      if (w.credits > left) {
        this.#changed(b);
        w.resolve(this.#refusal(w.token, w.credits, left));
      } else w.resolve(this.#hold(b, w.credits));
    }
  }

  /** Another instance's outstanding credits for a token. */
  remoteLevel(instance: string, tokenId: number, credits: number, now = Date.now()): void {
    this.#peers.set(instance, now);
    const b = this.#book(tokenId);
    if (credits > 0) b.remote.set(instance, credits);
    else b.remote.delete(instance);
  }

  /** Another instance was heard (its heartbeat): its figures still count. */
  peerSeen(instance: string, now = Date.now()): void {
    this.#peers.set(instance, now);
  }

  /** A newcomer must learn what this instance has outstanding: every non-zero figure is sent again. */
  announceAll(): void {
    for (const b of this.#books.values()) if (b.held + b.pending + b.unflushed > 0) this.#changed(b);
  }

  /**
   * What this instance will have outstanding per token once a flush of `tokens` commits: sent in
   * the flush's own notice, so that another instance counts the flushed credits as spent and
   * drops them from this one's figure in one step (between two notices it would count them twice
   * and refuse calls the budget covers).
   */
  levelsAfterFlush(tokens: ReadonlyArray<readonly [id: number, month: string, credits: number]>): LevelItem[] {
    if (!this.#feed) return [];
    const items: LevelItem[] = [];
    for (const [id, , credits] of tokens) {
      const b = this.#books.get(id);
      if (!b) continue;
      items.push(['v', this.#feed.instanceId, id, b.held + b.pending + Math.max(0, b.unflushed - credits)]);
    }
    return items;
  }

  /** A flush committed this instance's spend (the others read it from its notice): no longer outstanding. */
  flushed(tokens: ReadonlyArray<readonly [id: number, month: string, credits: number]>): void {
    if (!this.#feed) return;
    for (const [id, , credits] of tokens) {
      const b = this.#books.get(id);
      if (!b || b.unflushed === 0) continue;
      b.unflushed = Math.max(0, b.unflushed - credits);
      this.#changed(b);
    }
  }

  /** Stops waiting: reservations still waiting are decided on this instance's share. */
  close(): void {
    for (const batch of [...this.#inFlight.values()]) this.#decide(batch, 'share');
  }
}

const OK_NONE: Reservation = { ok: true, hold: null };

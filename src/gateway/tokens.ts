import { createHash, timingSafeEqual } from 'node:crypto';
import { utcMonth } from '../db/repositories/tokens.js';
import type { TokenRow } from '../db/schema.js';
import { count } from '../text.js';
import { type CompiledScopes, type TokenScopes, compileScopes } from './scopes.js';

/** A client token as the gateway holds it in memory. */
export interface TokenState {
  readonly id: number;
  readonly name: string;
  readonly hash: Buffer;
  budget: number | null;
  rpm: number | null;
  /** The month `spent` counts, `YYYY-MM`. */
  month: string;
  spent: number;
  /** Token bucket for the RPM limit. */
  allowance: number;
  allowanceAt: number;
  /** What it may do (endpoints, networks, expiry, caps); null: everything. */
  scopes: CompiledScopes | null;
  /** Seconds an identical request's answer may be reused (0: never); null: the door's default. */
  cacheTtlS: number | null;
}

const expired = (t: TokenState, now: number) => t.scopes?.expiresAtMs != null && now >= t.scopes.expiresAtMs;

/** The scopes stored on a token row. */
export function scopesOfRow(r: Pick<TokenRow, 'endpoints' | 'networks' | 'expires_at' | 'caps'>): TokenScopes {
  return {
    endpoints: r.endpoints ? (JSON.parse(r.endpoints) as TokenScopes['endpoints']) : null,
    networks: r.networks ? (JSON.parse(r.networks) as string[]) : null,
    expiresAt: r.expires_at,
    caps: r.caps ? (JSON.parse(r.caps) as TokenScopes['caps']) : null,
  };
}

export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

export function tokenPrefix(token: string): string {
  return `${token.slice(0, 7)}…`;
}

export type Admission = { ok: true } | { ok: false; status: 429; message: string; retryAfterS?: number };

/**
 * Client tokens in memory: authentication is a hash lookup plus a constant-time compare,
 * and the RPM check touches no database.
 */
export class TokenRegistry {
  readonly #byHash = new Map<string, TokenState>();
  readonly #byId = new Map<number, TokenState>();
  /** Revoked tokens' hashes → when they were revoked: a client presenting one is told so. */
  readonly #revoked = new Map<string, string>();

  /** Replaces the tokens; the spend and the RPM allowance of tokens still present carry over. */
  load(rows: readonly TokenRow[]): void {
    const previous = new Map(this.#byId);
    this.#byHash.clear();
    this.#byId.clear();
    this.#revoked.clear();
    for (const r of rows) {
      if (r.revoked_at) {
        this.#revoked.set(r.token_hash, r.revoked_at);
        continue;
      }
      const old = previous.get(r.id);
      const spentNow = old && old.month === r.spent_month ? Math.max(old.spent, r.month_spent) : r.month_spent;
      const state: TokenState = {
        id: r.id,
        name: r.name,
        hash: Buffer.from(r.token_hash, 'hex'),
        budget: r.monthly_budget,
        rpm: r.rpm_limit,
        month: r.spent_month,
        spent: spentNow,
        allowance: old?.allowance ?? r.rpm_limit ?? 0,
        allowanceAt: old?.allowanceAt ?? Date.now(),
        scopes: compileScopes(scopesOfRow(r)),
        cacheTtlS: r.cache_ttl_s ?? null,
      };
      this.#byHash.set(r.token_hash, state);
      this.#byId.set(r.id, state);
    }
  }

  /** Every live token (not revoked). */
  all(): IterableIterator<TokenState> {
    return this.#byId.values();
  }

  /** The live state of a token by id (admin views show its current spend). */
  byId(id: number): TokenState | undefined {
    return this.#byId.get(id);
  }

  /** The token's state, or null (unknown, revoked, or past its expiry). */
  authenticate(token: string, now = Date.now()): TokenState | null {
    const t = this.#find(token);
    return t && !expired(t, now) ? t : null;
  }

  /** When the token expired, if it is a client token past its expiry. */
  expiredAt(token: string, now = Date.now()): string | null {
    const t = this.#find(token);
    return t && expired(t, now) ? t.scopes!.expiresAt : null;
  }

  #find(token: string): TokenState | null {
    const h = hashToken(token);
    const t = this.#byHash.get(h.toString('hex'));
    return t && timingSafeEqual(t.hash, h) ? t : null;
  }

  /** When the token was revoked, if it is a revoked client token. */
  revokedAt(token: string): string | null {
    return this.#revoked.get(hashToken(token).toString('hex')) ?? null;
  }

  /**
   * May this token send a request now (its RPM limit)? Spends one request of its allowance if
   * so. Its budget is the BudgetLedger's to hold.
   */
  admit(t: TokenState, now = Date.now()): Admission {
    if (t.rpm !== null) {
      // Token bucket: rpm requests a minute, refilled continuously, bursts up to rpm.
      t.allowance = Math.min(t.rpm, t.allowance + ((now - t.allowanceAt) / 60_000) * t.rpm);
      t.allowanceAt = now;
      if (t.allowance < 1) {
        const retryAfterS = Math.max(1, Math.ceil(((1 - t.allowance) * 60) / t.rpm));
        return { ok: false, status: 429, message: `This token is limited to ${count(t.rpm, 'request')} per minute.`, retryAfterS };
      }
      t.allowance -= 1;
    }
    return { ok: true };
  }

  /**
   * The token as it stands now, or why it may no longer be used (revoked, deleted, expired):
   * a call that began earlier (an MCP batch, a research task's polls) is admitted again on it.
   */
  current(t: TokenState, now = Date.now()): TokenState | string {
    const live = this.#byId.get(t.id);
    if (!live) {
      const revoked = this.#revoked.get(t.hash.toString('hex'));
      return revoked ? `tavily-pool: this client token was revoked on ${revoked.slice(0, 10)}.` : 'tavily-pool: this client token no longer exists.';
    }
    if (expired(live, now)) return `tavily-pool: this client token expired at ${live.scopes!.expiresAt}.`;
    return live;
  }

  /** Adds credits to the token's spend this month (in memory; the write-behind buffer persists it). */
  charge(t: TokenState, credits: number, now = Date.now()): void {
    this.#roll(t, now);
    t.spent += credits;
  }

  #month = '';
  #monthFrom = 0;
  #monthTo = 0;

  /** The UTC month at `now`, recomputed only when `now` leaves the cached month. */
  #monthAt(now: number): string {
    if (now < this.#monthFrom || now >= this.#monthTo) {
      const d = new Date(now);
      this.#month = utcMonth(d);
      this.#monthFrom = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
      this.#monthTo = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
    }
    return this.#month;
  }

  /** Credits another instance charged to a token (its flush announced them). */
  addSpend(id: number, month: string, credits: number): void {
    const t = this.#byId.get(id);
    if (!t) return;
    if (month === t.month) t.spent += credits;
    else if (month > t.month) {
      t.month = month;
      t.spent = credits;
    }
  }

  /** Starts a new month's spend when the UTC month has changed since the token last spent. */
  rollMonth(t: TokenState, now = Date.now()): void {
    this.#roll(t, now);
  }

  #roll(t: TokenState, now: number): void {
    const m = this.#monthAt(now);
    if (t.month !== m) {
      t.month = m;
      t.spent = 0;
    }
  }
}

import type { Db } from '../db/database.js';
import { maskInput, maskKey } from '../crypto.js';
import type { KeyCipher } from '../crypto.js';
import type { AccountRepository } from '../db/repositories/accounts.js';
import type { KeyRepository } from '../db/repositories/keys.js';
import type { PlainKeyCache } from '../pool/key-cache.js';
import type { QuotaRefresher } from '../quota/refresh.js';
import type { Logger } from 'pino';
import type { KeyFigures, KeyListRow } from '../db/repositories/keys.js';

/** What an import reads and writes. */
export interface ImportDeps {
  db: Db;
  cipher: KeyCipher;
  keys: KeyRepository;
  accounts: AccountRepository;
  plainKeys: PlainKeyCache;
  refresher: Pick<QuotaRefresher, 'check'>;
  log: Logger;
}
import type { KeyHealth, KeyRow, NewKeyRow } from '../db/schema.js';
import { figuresFromUsage } from '../tavily/usage.js';
import { describeError } from '../http/errors.js';
import { forEachSliced } from '../slices.js';
import { ApiError } from '../http/api-error.js';

/** A Tavily key: `tvly-` then letters, digits, `-` or `_`. */
const KEY_RE = /^tvly-[A-Za-z0-9_-]{8,200}$/;
const MAX_LISTED = 1000;

export interface ImportRequest {
  /** Key texts as sent (JSON) or as found in the text. */
  inputs: string[];
  /** The account named with each input (null: none), parallel to `inputs`. */
  accounts?: (string | null)[];
  /** The account of every key that names none. */
  account?: string | null;
  /** The label named with each input (null: none), parallel to `inputs`. */
  labels?: (string | null)[];
  /** The label of every key that names none. */
  label: string | null;
  validate: boolean;
  /** Runs in the insert's transaction with the ids added (the audit log's row). */
  audit?: (trx: Db, addedIds: number[]) => Promise<void>;
}

export interface ImportResult {
  added: number;
  /** Accounts the added keys were put in. */
  accounts: number;
  accountIds: number[];
  duplicates: number;
  /** The first 1,000 duplicates, masked, and why each was one. */
  duplicate_inputs: { input: string; reason: string }[];
  rejected: { input: string; reason: string }[];
  rejected_count: number;
  items: KeyListRow[];
  items_truncated: boolean;
  /** Ids of every key added (the response lists only the first 1,000). */
  addedIds: number[];
}

function rejectReason(input: string): string {
  if (input === '') return 'empty';
  if (!input.startsWith('tvly-')) return 'not a Tavily key: keys start with "tvly-"';
  if (input.length < 13) return 'too short to be a Tavily key';
  if (input.length > 205) return 'too long to be a Tavily key';
  return 'not a Tavily key: only letters, digits, "-" and "_" may follow "tvly-"';
}

/**
 * Adds keys to the pool: de-duplicates within the request and against the pool, optionally
 * checks each new key against /usage, and inserts all of them in one transaction.
 */
export async function importKeys(ctx: ImportDeps, req: ImportRequest): Promise<ImportResult> {
  const rejected: ImportResult['rejected'] = [];
  let rejectedCount = 0;
  const unique = new Map<string, string>(); // hash → key text
  const accountOf = new Map<string, string>(); // hash → account name
  const labelOf = new Map<string, string>(); // hash → label
  const duplicateInputs: ImportResult['duplicate_inputs'] = [];
  let duplicates = 0;
  const duplicate = (key: string, reason: string) => {
    duplicates++;
    if (duplicateInputs.length < MAX_LISTED) duplicateInputs.push({ input: maskKey(key), reason });
  };
  // Hashing and sealing 100,000 keys takes about a second of CPU: done in slices, so that
  // the gateway keeps answering meanwhile.
  await forEachSliced(req.inputs, (raw, i) => {
    const key = raw.trim();
    if (!KEY_RE.test(key)) {
      rejectedCount++;
      if (rejected.length < MAX_LISTED) rejected.push({ input: maskInput(key), reason: rejectReason(key) });
      return;
    }
    const hash = ctx.cipher.hash(key);
    if (unique.has(hash)) duplicate(key, 'repeated in this import');
    else unique.set(hash, key);
    const account = req.accounts?.[i] || req.account;
    if (account && !accountOf.has(hash)) accountOf.set(hash, account);
    const label = req.labels?.[i] || req.label;
    if (label && !labelOf.has(hash)) labelOf.set(hash, label);
  });

  let fresh = [...unique.entries()];
  const now = new Date().toISOString();
  const sealed = new Map<string, string>(); // hash → sealed text
  const base = (hash: string, key: string) => {
    const ciphertext = ctx.cipher.encrypt(key);
    sealed.set(hash, ciphertext);
    return {
      label: labelOf.get(hash) ?? null,
      key_ciphertext: ciphertext,
      key_hash: hash,
      key_masked: maskKey(key),
      status: 'active' as KeyHealth,
      account_id: null as number | null,
      created_at: now,
      updated_at: now,
    };
  };

  // Only columns that carry a value are sent: the rest default to null in the table.
  const rows: NewKeyRow[] = [];
  if (req.validate) {
    // Spend /usage calls (rate-limited by Tavily) only on keys the pool does not hold yet.
    const existing = await ctx.keys.existingHashes(fresh.map(([h]) => h));
    for (const [h, key] of fresh) if (existing.has(h)) duplicate(key, 'already in the pool');
    fresh = fresh.filter(([h]) => !existing.has(h));
    const outcomes = await ctx.refresher.check(fresh.map(([, k]) => k));
    await forEachSliced(fresh, ([hash, key], i) => {
      const o = outcomes[i]!;
      const figures: KeyFigures = o.ok ? figuresFromUsage(o.report, now) : { ...NO_FIGURES, status: o.health ?? 'active' };
      rows.push({ ...base(hash, key), ...figures, last_refreshed_at: o.ok ? now : null, last_checked_at: now, last_error: o.ok ? null : o.error });
    });
  } else {
    await forEachSliced(fresh, ([hash, key]) => void rows.push(base(hash, key)));
  }

  let inserted: { id: number; key_hash: string }[];
  let rooms = new Map<number, number | null>();
  const names = new Map<number, string>();
  try {
    inserted = await ctx.db.transaction().execute(async (trx) => {
      // Accounts named with the keys are made (or found) in the same transaction.
      const wanted = [...new Set(rows.map((r) => accountOf.get(r.key_hash)).filter((n): n is string => n !== undefined))];
      const ids = wanted.length > 0 ? await ctx.accounts.ensureNames(wanted, trx) : new Map<string, number>();
      for (const [name, id] of ids) names.set(id, name);
      for (const r of rows) {
        const name = accountOf.get(r.key_hash);
        if (name !== undefined) r.account_id = ids.get(name)!;
      }
      const got = await ctx.keys.insertMany(rows, trx);
      // Their figures count again with the new keys' (when they were checked).
      rooms = await ctx.accounts.recompute([...ids.values()], trx);
      await req.audit?.(trx, got.map((g) => g.id));
      return got;
    });
  } catch (err) {
    ctx.log.error({ err, keys: rows.length }, 'key import: the insert transaction failed and was rolled back');
    const problem = describeError(err);
    if (problem.statusCode === 503) throw new ApiError(503, problem.code, `could not store the keys, nothing was added: ${problem.message}`);
    throw new ApiError(500, 'import_failed', 'could not store the keys; nothing was added');
  }
  // A key already in the pool (or another request added meanwhile) was skipped by the insert: a duplicate too.
  if (inserted.length < rows.length) {
    const got = new Set(inserted.map((r) => r.key_hash));
    for (const r of rows) if (!got.has(r.key_hash)) duplicate(unique.get(r.key_hash)!, 'already in the pool');
  }
  if (inserted.length > 0) ctx.log.info({ added: inserted.length, duplicates, rejected: rejectedCount }, 'keys imported');
  // The gateway's pool takes the new keys without decrypting each again.
  await forEachSliced(inserted, ({ id, key_hash }) => ctx.plainKeys.set(id, sealed.get(key_hash)!, unique.get(key_hash)!));

  // The answer lists the first 1,000 keys added, as stored.
  const listed = new Map(inserted.slice(0, MAX_LISTED).map((r) => [r.key_hash, r.id]));
  const byHash = new Map<string, NewKeyRow>();
  await forEachSliced(rows, (r) => {
    if (listed.has(r.key_hash)) byHash.set(r.key_hash, r);
  });
  const items = [...listed].map(([hash, id]) => {
    const row = { ...EMPTY_ROW, ...byHash.get(hash)!, id };
    const accountId = row.account_id ?? null;
    return { ...row, account_id: accountId, account_name: accountId === null ? null : names.get(accountId)!, account_remaining: accountId === null ? null : (rooms.get(accountId) ?? null) };
  });
  const insertedHashes = new Set(inserted.map((r) => r.key_hash));
  const usedAccounts = new Set<number>();
  for (const r of rows) if (r.account_id != null && insertedHashes.has(r.key_hash)) usedAccounts.add(r.account_id);
  return {
    added: inserted.length,
    accounts: usedAccounts.size,
    accountIds: [...usedAccounts],
    duplicates,
    duplicate_inputs: duplicateInputs,
    rejected,
    rejected_count: rejectedCount,
    items,
    items_truncated: inserted.length > MAX_LISTED,
    addedIds: inserted.map((r) => r.id),
  };
}

const NO_FIGURES: KeyFigures = {
  status: 'active',
  key_usage: null,
  key_limit: null,
  plan: null,
  plan_usage: null,
  plan_limit: null,
  paygo_usage: null,
  paygo_limit: null,
  endpoint_usage: null,
  remaining_quota: null,
  usage_read_at: null,
};

/** The columns an insert leaves at their defaults, as a stored row has them. */
const EMPTY_ROW: Omit<KeyRow, 'id' | 'key_ciphertext' | 'key_hash' | 'key_masked' | 'created_at' | 'updated_at'> = {
  ...NO_FIGURES,
  label: null,
  disabled_at: null,
  last_refreshed_at: null,
  last_checked_at: null,
  last_error: null,
  last_used_at: null,
  cooldown_until: null,
  cooldown_reason: null,
  account_id: null,
  cycle_started_at: null,
  drift_tavily: null,
  drift_pool: null,
  drift_since: null,
  drift_at: null,
};

import type { FastifyRequest } from 'fastify';
import { ApiError } from './api-error.js';
import { unstorableReason } from '../text.js';

/** Deeper JSON is not walked: no request body of this API nests more than a few levels. */
const MAX_DEPTH = 32;

/**
 * The first string in `value` (or object key) that no database can store as given, with its
 * path: `body.label must not contain a NUL character`. Null when every string is storable.
 */
export function unstorableField(value: unknown, path: string, depth = 0): string | null {
  if (typeof value === 'string') {
    const why = unstorableReason(value);
    return why ? `${path} ${why}` : null;
  }
  if (typeof value !== 'object' || value === null || depth > MAX_DEPTH) return null;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const v = value[i];
      // Most arrays hold plain strings (key imports): test them without a call per item.
      if (typeof v === 'string') {
        const why = unstorableReason(v);
        if (why) return `${path}[${i}] ${why}`;
      } else {
        const bad = unstorableField(v, `${path}[${i}]`, depth + 1);
        if (bad) return bad;
      }
    }
    return null;
  }
  for (const [k, v] of Object.entries(value)) {
    const keyWhy = unstorableReason(k);
    if (keyWhy) return `${path} has a field name that ${keyWhy.replace(/^must/, 'must')}`;
    const bad = unstorableField(v, `${path}.${k}`, depth + 1);
    if (bad) return bad;
  }
  return null;
}

/**
 * Refuses a request whose parameters, query or JSON body hold text the database cannot store
 * (a NUL character, an unpaired surrogate): a 400 naming the field, before any handler runs.
 */
export function assertStorableInput(req: FastifyRequest): void {
  // A route may name the only body fields that reach the database (the key import's keys
  // are checked by their own pattern; walking 100,000 of them here would cost ~15 ms).
  const fields = (req.routeOptions.config as { storedBodyFields?: readonly string[] }).storedBodyFields;
  const body = req.body as Record<string, unknown> | null | undefined;
  const bad =
    unstorableField(req.params, 'params') ??
    unstorableField(req.query, 'querystring') ??
    (typeof body !== 'object' || body === null
      ? null
      : fields
        ? fields.reduce<string | null>((found, f) => found ?? unstorableField(body[f], `body.${f}`), null)
        : unstorableField(body, 'body'));
  if (bad) throw new ApiError(400, 'invalid_request', bad);
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Only these body fields are checked for text the database cannot store. */
    storedBodyFields?: readonly string[];
  }
}

/**
 * A body whose bytes are not UTF-8. Decoding it anyway would store U+FFFD in place of each bad
 * byte (a token named "caf\xe9" saved as "caf�"), so it is refused, naming the first bad byte.
 */
export function invalidUtf8(bytes: Uint8Array): ApiError {
  // The longest prefix a streaming decoder takes without error (a sequence cut at the end is
  // not an error while streaming, so this grows with the prefix): found by halving.
  const fine = (n: number) => {
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(0, n), { stream: true });
      return true;
    } catch {
      return false;
    }
  };
  let lo = 0;
  let hi = bytes.length;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (fine(mid)) lo = mid;
    else hi = mid - 1;
  }
  // All of it taken: the body ends inside a character.
  return notUtf8(lo === bytes.length ? Math.max(0, bytes.length - 1) : lo);
}

/** The refusal of a body that is not UTF-8, naming where when that is known (a body read whole). */
export function notUtf8(offset?: number): ApiError {
  const near = offset === undefined ? '' : ` (a bad byte near offset ${offset})`;
  return new ApiError(400, 'invalid_encoding', `the body is not valid UTF-8 text${near}: send it encoded as UTF-8`);
}

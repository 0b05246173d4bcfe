import { verdictOf } from './classify.js';

/** How an upstream call failed; the refresh and (later) the gateway act on the kind. */
export type UpstreamErrorKind =
  | 'unauthorized' // 401: the key is invalid
  | 'rate_limited' // 429: slow down for retryAfterS
  | 'limit_exceeded' // 432: key or plan limit reached
  | 'paygo_exceeded' // 433: pay-as-you-go limit reached
  | 'client' // other 4xx: the request itself is wrong
  | 'server' // 5xx
  | 'timeout'
  | 'network'
  | 'malformed' // a 2xx whose body is not what Tavily sends
  | 'too_large'; // an answer over UPSTREAM_MAX_BODY_BYTES

export class UpstreamError extends Error {
  override name = 'UpstreamError';
  constructor(
    readonly kind: UpstreamErrorKind,
    message: string,
    readonly statusCode: number | null = null,
    readonly retryAfterS: number | null = null,
  ) {
    super(message);
  }
}

/** Removes anything that looks like a Tavily key from text that may reach logs or clients. */
export function scrubKeys(text: string): string {
  return text.replace(/tvly-[A-Za-z0-9_-]+/g, 'tvly-…');
}

/** The error kind of a failed answer, from the verdict its status carries (classify.ts). */
export function kindForStatus(status: number): UpstreamErrorKind {
  switch (verdictOf(status)) {
    case 'invalid':
      return 'unauthorized';
    case 'rate_limited':
      return 'rate_limited';
    case 'exhausted':
      return status === 433 ? 'paygo_exceeded' : 'limit_exceeded';
    case 'failure':
      return 'server';
    default:
      return 'client';
  }
}

/** Retry-After as seconds: delta-seconds or an HTTP date; null when absent or unreadable. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | null {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return null;
  if (/^\d+$/.test(v.trim())) return Number(v.trim());
  const at = Date.parse(v);
  if (Number.isNaN(at)) return null;
  return Math.max(0, Math.ceil((at - now) / 1000));
}

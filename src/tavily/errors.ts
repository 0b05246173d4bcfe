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

export function kindForStatus(status: number): UpstreamErrorKind {
  if (status === 401) return 'unauthorized';
  if (status === 429) return 'rate_limited';
  if (status === 432) return 'limit_exceeded';
  if (status === 433) return 'paygo_exceeded';
  if (status >= 500) return 'server';
  return 'client';
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

/**
 * What Tavily's answer says, by its status: the one classification the gateway and the
 * refresh share.
 * - `served`: the request's answer (2xx);
 * - `request`: the request's own fault (400, 403, 404, …): it goes back to the client as is;
 * - `invalid`: the key is not valid (401);
 * - `exhausted`: the key or its plan is out of credits (432, or 433 for pay-as-you-go);
 * - `rate_limited`: the key must rest (429, with Retry-After);
 * - `failure`: Tavily failed (5xx): another key may serve.
 */
export type Verdict = 'served' | 'request' | 'invalid' | 'exhausted' | 'rate_limited' | 'failure';

export function verdictOf(status: number): Verdict {
  if (status < 400) return 'served';
  if (status === 401) return 'invalid';
  if (status === 432 || status === 433) return 'exhausted';
  if (status === 429) return 'rate_limited';
  if (status >= 500) return 'failure';
  return 'request';
}

/** Verdicts that say something about the key, not the request: the gateway tries another key. */
export const KEY_VERDICTS: ReadonlySet<Verdict> = new Set(['invalid', 'exhausted', 'rate_limited']);

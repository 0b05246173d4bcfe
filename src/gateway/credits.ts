import { ENDPOINTS, type EndpointName } from './endpoints.js';

type Json = Record<string, unknown>;

/** The response's own figure, when Tavily gave one (checked by chargeableCredits). */
export function reportedCredits(response: Json): unknown {
  const usage = response.usage as { credits?: unknown } | undefined;
  return typeof usage === 'object' && usage !== null ? usage.credits : undefined;
}

/**
 * The credits to count for an answer. `full`: Tavily's `usage.credits`, or else the published
 * cost; `reported`: only a figure Tavily reports; `none`: nothing (a research poll after the
 * one that billed it). A reported figure outside 0…the endpoint's maximum is not trusted: the
 * published cost is counted instead (nothing, for `reported`) and `rejected` holds the
 * figure, for the log.
 */
export function chargeableCredits(
  endpoint: EndpointName,
  request: Json,
  response: Json,
  billing: 'full' | 'reported' | 'none',
): { credits: number; rejected?: unknown } {
  if (billing === 'none') return { credits: 0 };
  const spec = ENDPOINTS[endpoint];
  const fallback = () => (billing === 'full' ? spec.estimate(request, response) : 0);
  const reported = reportedCredits(response);
  if (reported === undefined || reported === null) return { credits: fallback() };
  if (typeof reported === 'number' && Number.isFinite(reported) && reported >= 0 && reported <= spec.max(request)) {
    return { credits: reported };
  }
  return { credits: fallback(), rejected: reported };
}

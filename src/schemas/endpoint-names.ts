/**
 * The Tavily endpoints the gateway serves, by the name the request log and the admin API use.
 * Kept apart from their table (endpoints.ts) so that the dashboard can import the names
 * without the server's code; the table must have an entry for each (the compiler checks).
 */
export const ENDPOINT_NAMES = ['search', 'extract', 'crawl', 'map', 'research', 'research.get', 'feedback'] as const;
export type EndpointName = (typeof ENDPOINT_NAMES)[number];

/** The endpoints a token may be limited to: every endpoint but a research poll, which goes with `research`. */
export type ScopeEndpoint = Exclude<EndpointName, 'research.get'>;
export const SCOPE_ENDPOINTS = ENDPOINT_NAMES.filter((n): n is ScopeEndpoint => n !== 'research.get');

/** The request log's status filters: `errors` is any status from 400. */
export const STATUS_CLASSES = ['2xx', '4xx', '5xx', 'errors'] as const;
export type StatusClass = (typeof STATUS_CLASSES)[number];

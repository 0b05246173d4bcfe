/**
 * The Tavily endpoints the gateway serves, by the name the request log and the admin API use.
 * Kept apart from their table (endpoints.ts) so that the dashboard can import the names
 * without the server's code; the table must have an entry for each (the compiler checks).
 */
export const ENDPOINT_NAMES = ['search', 'extract', 'crawl', 'map', 'research', 'research.get', 'feedback'] as const;
export type EndpointName = (typeof ENDPOINT_NAMES)[number];

/**
 * The data layer: every request of the dashboard goes through TanStack Query (caching,
 * background refetch, one loading and error pattern), and every change invalidates what it
 * may have changed.
 */
import { QueryClient, infiniteQueryOptions, keepPreviousData, queryOptions, useMutation, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { ApiError, type AccountList, type AlertEvent, type AuditRow, type KeyDetail, type KeyList, type LogList, type RefreshStatus, type Rules, type Sink, type Stats, type Suggestion, type Summary, type TokenList, api, qs } from './api';

export const queryClient = new QueryClient({
  defaultOptions: {
    queries: {
      // Cached data shows at once when a page opens again, and is refetched behind it.
      staleTime: 0,
      // A refusal (4xx) will not change by asking again; a failure may.
      retry: (n, err) => !(err instanceof ApiError && err.status < 500) && n < 2,
    },
  },
});

type Params = Record<string, string | number | undefined>;
const get = <T,>(path: string) => queryOptions({ queryKey: ['api', path], queryFn: ({ signal }) => api<T>(path, { signal }) });

/** A list read page by page, newest first: `cursor` is the query parameter, `next` reads the next page's value from an answer. */
const pages = <T, C extends string | number>(path: string, params: Params, cursor: string, next: (page: T) => C | null) =>
  infiniteQueryOptions({
    queryKey: ['api', path, params],
    queryFn: ({ pageParam, signal }) => api<T>(`${path}?${qs({ ...params, [cursor]: pageParam as C | undefined })}`, { signal }),
    initialPageParam: undefined as C | undefined,
    getNextPageParam: (last) => next(last) ?? undefined,
    // A new filter keeps the old rows on screen until its first page is there.
    placeholderData: keepPreviousData,
  });

/** Every GET the dashboard makes, with its answer's type. */
export const Q = {
  summary: () => get<Summary>('/summary'),
  stats: (from: string) => get<Stats>(`/stats?${qs({ from })}`),
  keys: (params: Params) => get<KeyList>(`/tavily-keys?${qs(params)}`),
  key: (id: number) => get<KeyDetail>(`/tavily-keys/${id}`),
  refreshStatus: () => get<RefreshStatus>('/tavily-keys/refresh-quota'),
  accounts: () => get<AccountList>('/accounts?limit=1000'),
  suggestions: () => get<{ items: Suggestion[] }>('/accounts/suggestions'),
  tokens: (includeRevoked: boolean) => get<TokenList>(`/tokens?${qs({ include_revoked: includeRevoked })}`),
  logs: (params: Params) => get<LogList>(`/logs?${qs(params)}`),
  logPages: (params: Params) => pages<LogList, string>('/logs', params, 'cursor', (p) => p.next_cursor),
  auditPages: (params: Params) => pages<{ items: AuditRow[]; next: number | null }, number>('/audit', params, 'before', (p) => p.next),
  rules: () => get<Rules>('/alerts/rules'),
  sinks: () => get<{ items: Sink[] }>('/alerts/sinks'),
  events: () => get<{ items: AlertEvent[] }>('/alerts/events?limit=50'),
};

/**
 * A change: runs `fn`, then refetches every admin query (a change to a key moves the summary,
 * the accounts and the logs too; the dashboard's queries are few and cheap).
 */
export function useChange<V, R>(fn: (v: V) => Promise<R>) {
  const qc = useQueryClient();
  return useMutation({ mutationFn: fn, onSettled: () => qc.invalidateQueries({ queryKey: ['api'] }) });
}

/**
 * Changes that say what they did: `act(run)` runs one (its answer is the words for it, or null
 * for nothing to say); `done` holds the last one's words, `error` its failure.
 */
export function useAction() {
  const [done, setDone] = useState<string | null>(null);
  const change = useChange((run: () => Promise<string | null>) => run());
  const act = (run: () => Promise<string | null>, onDone?: () => void) => {
    setDone(null);
    change.mutate(run, {
      onSuccess: (said) => {
        setDone(said);
        onDone?.();
      },
    });
  };
  return { act, done, error: change.error };
}

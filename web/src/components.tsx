import type { UseQueryResult } from '@tanstack/react-query';
import { type ReactNode, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { useFormat } from './i18n';

/** A copy of the set with `item` in it (`on`) or out of it; by default, the other way round. */
export function toggled<T>(s: ReadonlySet<T>, item: T, on = !s.has(item)): Set<T> {
  const next = new Set(s);
  if (on) next.add(item);
  else next.delete(item);
  return next;
}

/** A labelled, horizontally scrollable table with a header row of column headings. */
export function DataTable({ label, columns, children }: { label: string; columns: ReactNode[]; children: ReactNode }) {
  return (
    <div className="table-wrap">
      <table aria-label={label}>
        <thead>
          <tr>
            {columns.map((c, i) => (
              <th key={i} scope="col">
                {c}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>{children}</tbody>
      </table>
    </div>
  );
}

/** An error announced to screen readers; nothing when there is none. */
export function ErrorAlert({ message }: { message: string | null | undefined }) {
  return message ? (
    <p role="alert" className="error">
      {message}
    </p>
  ) : null;
}

/** A change's outcome: "Done: …" or its error (nothing before it ran). */
export function Outcome({ done, error }: { done?: string | null; error?: Error | null }) {
  const { t } = useTranslation();
  if (error) return <ErrorAlert message={error.message} />;
  return done ? <p role="status">{t('common.done', { what: done })}</p> : null;
}

/** One loading and error pattern for every query: children render once the data is there. */
export function Pending<T>({ q, children }: { q: UseQueryResult<T>; children: (data: T) => ReactNode }) {
  const { t } = useTranslation();
  if (q.data !== undefined) return <>{children(q.data)}</>;
  if (q.error) return <ErrorAlert message={q.error.message} />;
  return <p aria-busy="true">{t('common.loading')}</p>;
}

/** A time in the dashboard's one format, in the browser's time zone; the full instant on hover. */
export function When({ at, empty }: { at: string | null | undefined; empty?: string }) {
  const f = useFormat();
  const { t } = useTranslation();
  if (!at) return <span className="muted">{empty ?? t('common.never')}</span>;
  return (
    <time dateTime={at} title={`${at} (UTC)`}>
      {f.dateTime(at)}
    </time>
  );
}

/** A button that copies text, saying so. */
export function CopyButton({ text, label }: { text: string; label?: string }) {
  const { t } = useTranslation();
  const [copied, setCopied] = useState(false);
  return (
    <button
      type="button"
      className="secondary"
      aria-label={label}
      onClick={() => navigator.clipboard.writeText(text).then(() => setCopied(true), () => setCopied(false))}
    >
      {copied ? t('common.copied') : t('common.copy')}
    </button>
  );
}

/** A meter of `value` out of `max`, with the figures beside it. */
export function Meter({ value, max, label, over }: { value: number; max: number; label: string; over?: boolean }) {
  const f = useFormat();
  const pct = max > 0 ? Math.max(0, Math.min(100, (value / max) * 100)) : 0;
  return (
    <span className="quota">
      <span className={`bar${over ? ' over' : ''}`} role="meter" aria-label={label} aria-valuemin={0} aria-valuemax={max} aria-valuenow={value}>
        <span style={{ width: `${pct}%` }} />
      </span>
      {f.num(value)} / {f.num(max)}
    </span>
  );
}

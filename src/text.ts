/**
 * Text from outside (upstream messages, request ids, labels, names) on its way to the
 * database. PostgreSQL cannot store a NUL character in text (nor `\u0000` in jsonb), and a
 * lone UTF-16 surrogate is not Unicode at all: both databases would receive it altered or
 * refuse the whole statement.
 */

const SUSPECT = /[\u0000\uD800-\uDFFF]/;
const NUL = /\u0000/g;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** The text with NUL characters removed and lone surrogates replaced by U+FFFD. */
export function storableText(s: string): string {
  if (!SUSPECT.test(s)) return s;
  return s.replace(NUL, '').replace(LONE_SURROGATE, '\uFFFD');
}

/** As storableText, for a value that may be null. */
export function storableOrNull(s: string | null): string | null {
  return s === null ? null : storableText(s);
}

/** Why the text cannot be stored as given, or null when it can (for input validation). */
export function unstorableReason(s: string): string | null {
  if (!SUSPECT.test(s)) return null;
  if (s.includes('\u0000')) return 'must not contain a NUL character';
  LONE_SURROGATE.lastIndex = 0;
  if (LONE_SURROGATE.test(s)) return 'must be valid Unicode (it holds an unpaired surrogate)';
  return null;
}

/** `1 request`, `2 requests`: a count with its noun. */
export function count(n: number, singular: string, plural = `${singular}s`): string {
  return `${n} ${n === 1 ? singular : plural}`;
}

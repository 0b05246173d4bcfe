/**
 * What a database error says about the operation that hit it:
 * - `data`: this statement's data cannot be stored (a NUL in text, a number out of range, a
 *   constraint): trying the same data again fails again.
 * - `full`: the disk, or a configured size limit, is full.
 * - `unavailable`: the database cannot be reached or is busy; the same write may work later.
 * - `other`: anything else (a bug, a schema that is not what the code expects).
 */
export type DbFault = 'data' | 'full' | 'unavailable' | 'other';

const SQLITE_DATA = new Set(['SQLITE_MISMATCH', 'SQLITE_TOOBIG', 'SQLITE_RANGE']);
const SQLITE_UNAVAILABLE = new Set(['SQLITE_BUSY', 'SQLITE_LOCKED', 'SQLITE_CANTOPEN', 'SQLITE_READONLY', 'SQLITE_PROTOCOL']);
const NET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH']);

export function dbFault(err: unknown): DbFault {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') {
    if (code.startsWith('SQLITE_')) {
      if (code === 'SQLITE_FULL') return 'full';
      if (code.startsWith('SQLITE_CONSTRAINT') || SQLITE_DATA.has(code)) return 'data';
      if (code.startsWith('SQLITE_IOERR') || SQLITE_UNAVAILABLE.has(code)) return 'unavailable';
      return 'other';
    }
    if (NET_CODES.has(code)) return 'unavailable';
    // PostgreSQL's SQLSTATE: 22 data exception, 23 integrity constraint, 54 program limit
    // exceeded; 53 insufficient resources (53100 disk full); 08 connection, 57P admin shutdown.
    if (/^[0-9A-Z]{5}$/.test(code)) {
      const cls = code.slice(0, 2);
      if (cls === '22' || cls === '23' || cls === '54') return 'data';
      if (cls === '53') return 'full';
      if (cls === '08' || code.startsWith('57P')) return 'unavailable';
      return 'other';
    }
  }
  const message = err instanceof Error ? err.message : '';
  if (/Connection terminated|connection timeout|timeout exceeded when trying to connect/i.test(message)) return 'unavailable';
  return 'other';
}

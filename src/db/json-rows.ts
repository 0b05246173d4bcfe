import { type RawBuilder, sql } from 'kysely';
import type { DialectKind } from './database.js';

/** A column of a JSON row set: its name and SQL type. */
export type ColumnSpec = readonly [string, string];

/**
 * `(select … ) as v`: many rows sent as one JSON array of arrays (one bound parameter) and
 * read back as typed columns — the source of a set-based `UPDATE … FROM` or `INSERT … SELECT`,
 * so that a batch costs one statement whatever its size.
 */
export function jsonRows(dialect: DialectKind, cols: readonly ColumnSpec[], rows: unknown[][]): RawBuilder<unknown> {
  const json = JSON.stringify(rows);
  if (dialect === 'postgres') {
    const fields = cols.map(([c, type], i) => sql`(e ->> ${sql.lit(i)})::${sql.raw(type)} as ${sql.ref(c)}`);
    return sql`(select ${sql.join(fields)} from jsonb_array_elements(${json}::jsonb) as e) as v`;
  }
  const fields = cols.map(([c], i) => sql`value ->> ${sql.lit(i)} as ${sql.ref(c)}`);
  return sql`(select ${sql.join(fields)} from json_each(${json})) as v`;
}

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import SqliteDatabase from 'better-sqlite3';
import { sql } from 'kysely';
import { openDatabase } from '../../src/db/database.js';
import { tempDir } from '../support/db.js';

test('SQLite: the main connection never checkpoints; a thread of its own copies the WAL into the database file', async () => {
  const dir = tempDir();
  const file = path.join(dir, 'db.sqlite');
  const h = await openDatabase({ kind: 'sqlite', file });
  try {
    const { rows } = await sql<{ wal_autocheckpoint: number }>`pragma wal_autocheckpoint`.execute(h.db);
    assert.equal(rows[0]!.wal_autocheckpoint, 0, 'no checkpoint in the thread that serves requests');
    await h.db.transaction().execute(async (trx) => {
      for (let i = 0; i < 20; i++) {
        await trx
          .insertInto('settings')
          .values(Array.from({ length: 100 }, (_, j) => ({ name: `s${i}-${j}`, value: 'x'.repeat(200) })))
          .execute();
      }
    });
    // The database file alone (without its -wal) holds the rows once they are checkpointed.
    const copy = path.join(dir, 'copy.sqlite');
    let inFile = 0;
    for (let i = 0; i < 100 && inFile < 2000; i++) {
      await new Promise((r) => setTimeout(r, 50));
      fs.copyFileSync(file, copy);
      const c = new SqliteDatabase(copy, { readonly: true });
      try {
        inFile = (c.prepare('select count(*) as n from settings').get() as { n: number }).n;
      } catch {
        inFile = 0; // the table itself is not in the file yet
      } finally {
        c.close();
      }
    }
    assert.equal(inFile, 2000, 'the checkpoint thread wrote the rows into the database file');
  } finally {
    await h.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

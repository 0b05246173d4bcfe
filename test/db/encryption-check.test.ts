import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadConfig, ConfigError } from '../../src/config.js';
import { createContext } from '../../src/context.js';
import { generateEncryptionKey, parseEncryptionKey } from '../../src/crypto.js';
import { createLogger } from '../../src/logger.js';
import { LogSink } from '../support/app.js';
import { describeEachDialect } from '../support/db.js';

describeEachDialect('the ENCRYPTION_KEY check at start', (dialect) => {
  const start = async (db: Awaited<ReturnType<typeof dialect.create>>, key: Buffer) =>
    createContext({ ...loadConfig({ DATA_DIR: db.dataDir, REFRESH_ON_START: 'false' }), database: db.config }, { adminToken: 'a'.repeat(24), encryptionKey: key }, createLogger('info', new LogSink()), db.open);
  const isKeyMismatch = (e: unknown) => e instanceof ConfigError && e.variable === 'ENCRYPTION_KEY' && /does not open the keys stored/.test(e.message);

  test('an instance with another ENCRYPTION_KEY than the database’s stops with an error naming it', async () => {
    const db = await dialect.create();
    try {
      const key = parseEncryptionKey(generateEncryptionKey());
      const first = await start(db, key);
      await first.close();
      // Even before any key is stored, the fingerprint of the first start decides.
      await assert.rejects(start(db, parseEncryptionKey(generateEncryptionKey())), isKeyMismatch);
      const again = await start(db, key);
      await again.close();
    } finally {
      await db.cleanup();
    }
  });

  test('a database from before the fingerprint is checked against its stored keys', async () => {
    const db = await dialect.create();
    try {
      const key = parseEncryptionKey(generateEncryptionKey());
      const first = await start(db, key);
      await first.services.keys.add({ remote_addr: null, user_agent: 'test' }, { inputs: ['tvly-dev-fingerprint0001'], label: null, validate: false });
      await first.parts.database.db.deleteFrom('settings').execute();
      await first.close();
      await assert.rejects(start(db, parseEncryptionKey(generateEncryptionKey())), isKeyMismatch);
      const right = await start(db, key);
      try {
        assert.equal(right.parts.pool.size, 1, 'the right key opens the stored key');
        const row = await right.parts.database.db.selectFrom('settings').selectAll().executeTakeFirst();
        assert.equal(row?.name, 'encryption_key_check', 'and its fingerprint is stored now');
      } finally {
        await right.close();
      }
    } finally {
      await db.cleanup();
    }
  });
});

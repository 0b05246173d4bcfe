import { ConfigError } from '../config.js';
import { type KeyCipher, KeyDecryptError } from '../crypto.js';
import type { Db } from './database.js';
import { SettingsRepository } from './repositories/settings.js';

export const ENCRYPTION_CHECK = 'encryption_key_check';

/** A keyed hash that identifies the ENCRYPTION_KEY without revealing it. */
export function encryptionFingerprint(cipher: KeyCipher): string {
  return cipher.hash('tavily-pool/encryption-key-check');
}

const MISMATCH =
  'it does not open the keys stored in this database. Every instance that shares a database must run with the same ENCRYPTION_KEY ' +
  '(if the first instance generated one, it is in its DATA_DIR/encryption-key)';

/**
 * Every instance sharing a database must seal keys with the same ENCRYPTION_KEY. The first
 * start stores the key's fingerprint; an instance started with another key stops with an
 * error naming ENCRYPTION_KEY, rather than serve without the keys it cannot open. A database
 * made before the fingerprint existed is checked against one of its stored keys.
 */
export async function checkEncryptionKey(db: Db, cipher: KeyCipher): Promise<void> {
  const settings = new SettingsRepository(db);
  const mine = encryptionFingerprint(cipher);
  let stored = await settings.get(ENCRYPTION_CHECK);
  if (stored === undefined) {
    const sample = await db.selectFrom('tavily_keys').select('key_ciphertext').orderBy('id').limit(1).executeTakeFirst();
    if (sample) {
      try {
        cipher.decrypt(sample.key_ciphertext);
      } catch (err) {
        if (err instanceof KeyDecryptError) throw new ConfigError('ENCRYPTION_KEY', MISMATCH);
        throw err;
      }
    }
    // Two instances starting at once with different keys: the first insert wins, the other stops.
    stored = await settings.putIfAbsent(ENCRYPTION_CHECK, mine);
  }
  if (stored !== mine) throw new ConfigError('ENCRYPTION_KEY', MISMATCH);
}

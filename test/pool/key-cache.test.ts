import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KeyCipher, KeyDecryptError, generateEncryptionKey, parseEncryptionKey } from '../../src/crypto.js';
import { PlainKeyCache } from '../../src/pool/key-cache.js';

class CountingCipher extends KeyCipher {
  decrypts = 0;
  override decrypt(sealed: string): string {
    this.decrypts++;
    return super.decrypt(sealed);
  }
}

test('decrypts a key once, again only when its sealed text changes, and forgets deleted keys', () => {
  const cipher = new CountingCipher(parseEncryptionKey(generateEncryptionKey()));
  const cache = new PlainKeyCache(cipher);
  const a = cipher.encrypt('tvly-dev-aaaaaaaaaaaa');
  const b = cipher.encrypt('tvly-dev-bbbbbbbbbbbb');
  assert.equal(cache.get(1, a), 'tvly-dev-aaaaaaaaaaaa');
  assert.equal(cache.get(1, a), 'tvly-dev-aaaaaaaaaaaa');
  assert.equal(cipher.decrypts, 1);
  assert.equal(cache.get(1, b), 'tvly-dev-bbbbbbbbbbbb', 'a re-sealed key is decrypted again');
  assert.equal(cipher.decrypts, 2);
  cache.get(2, a);
  cache.retain([2]);
  assert.equal(cache.size, 1);
  assert.throws(() => cache.get(3, 'v1:AAAA'), KeyDecryptError);
});

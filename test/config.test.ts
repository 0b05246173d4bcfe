import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { ConfigError, loadConfig } from '../src/config.js';
import { KeyCipher, KeyDecryptError, generateEncryptionKey, maskInput, maskKey, parseEncryptionKey, secretsEqual } from '../src/crypto.js';
import { resolveSecrets } from '../src/secrets.js';
import { tempDir } from './support/db.js';

function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('loadConfig accepted a bad value');
}

describe('config', () => {
  test('defaults need no environment at all', () => {
    const c = loadConfig({});
    assert.equal(c.port, 8080);
    assert.equal(c.host, '0.0.0.0');
    assert.equal(c.database.kind, 'sqlite');
    assert.equal(c.database.kind === 'sqlite' && path.basename(c.database.file), 'tavily-pool.db');
    assert.equal(c.tavilyBaseUrl, 'https://api.tavily.com');
    assert.equal(c.refreshConcurrency, 64);
    assert.equal(c.refreshTimeoutMs, 30_000);
    assert.equal(c.logLevel, 'info');
    assert.equal(c.adminToken, undefined);
  });

  test('reads every variable', () => {
    const c = loadConfig({
      PORT: '9000',
      HOST: '127.0.0.1',
      DATA_DIR: '/tmp/x',
      DATABASE_URL: 'postgres://u@h:5432/db',
      ADMIN_TOKEN: 'a-very-long-admin-token',
      TAVILY_BASE_URL: 'http://127.0.0.1:1234/',
      REFRESH_CONCURRENCY: '1000',
      REFRESH_TIMEOUT_MS: '500',
      LOG_LEVEL: 'DEBUG',
    });
    assert.equal(c.port, 9000);
    assert.deepEqual(c.database, { kind: 'postgres', url: 'postgres://u@h:5432/db' });
    assert.equal(c.tavilyBaseUrl, 'http://127.0.0.1:1234');
    assert.equal(c.refreshConcurrency, 1000);
    assert.equal(c.logLevel, 'debug');
    assert.equal(c.dataDir, '/tmp/x');
  });

  test('a bad value names its variable', () => {
    assert.equal(configError({ PORT: 'eighty' }).variable, 'PORT');
    assert.equal(configError({ PORT: '70000' }).variable, 'PORT');
    assert.equal(configError({ REFRESH_CONCURRENCY: '0' }).variable, 'REFRESH_CONCURRENCY');
    assert.equal(configError({ REFRESH_TIMEOUT_MS: '-5' }).variable, 'REFRESH_TIMEOUT_MS');
    assert.equal(configError({ TAVILY_BASE_URL: 'ftp://x' }).variable, 'TAVILY_BASE_URL');
    assert.equal(configError({ DATABASE_URL: 'mysql://x' }).variable, 'DATABASE_URL');
    assert.equal(configError({ LOG_LEVEL: 'loud' }).variable, 'LOG_LEVEL');
    assert.equal(configError({ ADMIN_TOKEN: 'short' }).variable, 'ADMIN_TOKEN');
    assert.match(configError({ PORT: 'eighty' }).message, /^PORT: /);
  });
});

describe('secrets', () => {
  test('generated once into DATA_DIR with mode 0600, then reused', () => {
    const dir = path.join(tempDir(), 'data');
    const cfg = loadConfig({ DATA_DIR: dir });
    const first = resolveSecrets(cfg);
    assert.equal(first.adminTokenGenerated, true);
    assert.equal(first.encryptionKey.length, 32);
    for (const f of ['admin-token', 'encryption-key']) {
      assert.equal(fs.statSync(path.join(dir, f)).mode & 0o777, 0o600, f);
    }
    const again = resolveSecrets(cfg);
    assert.equal(again.adminTokenGenerated, false);
    assert.equal(again.adminToken, first.adminToken);
    assert.deepEqual(again.encryptionKey, first.encryptionKey);
  });

  test('environment values win and write no files', () => {
    const dir = path.join(tempDir(), 'data');
    const key = generateEncryptionKey();
    const s = resolveSecrets(loadConfig({ DATA_DIR: dir, ADMIN_TOKEN: 'env-admin-token-123456', ENCRYPTION_KEY: key }));
    assert.equal(s.adminToken, 'env-admin-token-123456');
    assert.equal(s.encryptionKey.toString('hex'), key);
    assert.equal(fs.existsSync(dir), false);
  });

  test('a malformed ENCRYPTION_KEY is a ConfigError naming it', () => {
    assert.throws(() => parseEncryptionKey('not-a-key'), (e: unknown) => e instanceof ConfigError && e.variable === 'ENCRYPTION_KEY');
    assert.equal(parseEncryptionKey(Buffer.alloc(32, 7).toString('base64')).length, 32);
  });
});

describe('crypto', () => {
  const cipher = new KeyCipher(parseEncryptionKey(generateEncryptionKey()));

  test('encrypts with a fresh IV and decrypts back', () => {
    const key = 'tvly-dev-abcdefghijklmnop1234';
    const a = cipher.encrypt(key);
    const b = cipher.encrypt(key);
    assert.notEqual(a, b);
    assert.ok(!a.includes('abcdefghijklmnop'));
    assert.equal(cipher.decrypt(a), key);
  });

  test('another master key cannot decrypt, and tampering is detected', () => {
    const sealed = cipher.encrypt('tvly-dev-abcdefghijklmnop1234');
    const other = new KeyCipher(parseEncryptionKey(generateEncryptionKey()));
    assert.throws(() => other.decrypt(sealed), KeyDecryptError);
    const raw = Buffer.from(sealed.slice(3), 'base64');
    raw[raw.length - 1]! ^= 1;
    assert.throws(() => cipher.decrypt(`v1:${raw.toString('base64')}`), KeyDecryptError);
  });

  test('hash is stable per master key', () => {
    assert.equal(cipher.hash('tvly-x'), cipher.hash('tvly-x'));
    assert.notEqual(cipher.hash('tvly-x'), cipher.hash('tvly-y'));
  });

  test('masks keep only the kind and the last four characters', () => {
    assert.equal(maskKey('tvly-dev-abcdefghijklmnopa1b2'), 'tvly-dev-…a1b2');
    assert.equal(maskKey('tvly-abcdefghijklmnopq9z8'), 'tvly-…q9z8');
    assert.equal(maskInput('sk-secret-value-123'), 'sk…23');
    assert.equal(maskInput('abc'), '***');
  });

  test('secretsEqual compares any lengths', () => {
    assert.equal(secretsEqual('abc', 'abc'), true);
    assert.equal(secretsEqual('abc', 'abcd'), false);
    assert.equal(secretsEqual('', 'abc'), false);
  });
});

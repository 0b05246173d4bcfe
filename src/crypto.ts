import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { ConfigError } from './config.js';

const VERSION = 'v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;

/**
 * A fresh random 96-bit IV. Random bytes are drawn in blocks (one syscall per 4,096 IVs)
 * and every byte is used once: an IV is never reused.
 */
let ivPool = Buffer.alloc(0);
let ivOffset = 0;
function freshIv(): Buffer {
  if (ivOffset + IV_BYTES > ivPool.length) {
    ivPool = randomBytes(IV_BYTES * 4096);
    ivOffset = 0;
  }
  const iv = ivPool.subarray(ivOffset, ivOffset + IV_BYTES);
  ivOffset += IV_BYTES;
  return iv;
}

/** Accepts 64 hex characters or base64/base64url text that decodes to exactly 32 bytes. */
export function parseEncryptionKey(raw: string): Buffer {
  const text = raw.trim();
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, 'hex');
  if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(text)) {
    const buf = Buffer.from(text.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    if (buf.length === 32) return buf;
  }
  throw new ConfigError('ENCRYPTION_KEY', 'expected 32 bytes as 64 hex characters or base64 (e.g. `openssl rand -hex 32`)');
}

export function generateEncryptionKey(): string {
  return randomBytes(32).toString('hex');
}

export function generateToken(prefix: string): string {
  return `${prefix}${randomBytes(32).toString('base64url')}`;
}

/**
 * Encrypts Tavily keys at rest with AES-256-GCM and derives a keyed hash for
 * de-duplication, so the database never holds a key's text.
 */
export class KeyCipher {
  readonly #encKey: Buffer;
  readonly #hashKey: Buffer;

  constructor(masterKey: Buffer) {
    if (masterKey.length !== 32) throw new Error('master key must be 32 bytes');
    this.#encKey = Buffer.from(hkdfSync('sha256', masterKey, Buffer.alloc(0), 'tavily-pool/key-encryption', 32));
    this.#hashKey = Buffer.from(hkdfSync('sha256', masterKey, Buffer.alloc(0), 'tavily-pool/key-hash', 32));
  }

  encrypt(plain: string): string {
    const iv = freshIv();
    const cipher = createCipheriv('aes-256-gcm', this.#encKey, iv);
    const ct = cipher.update(plain, 'utf8');
    cipher.final(); // GCM is a stream mode: final() adds no bytes
    const out = Buffer.allocUnsafe(IV_BYTES + TAG_BYTES + ct.length);
    iv.copy(out, 0);
    cipher.getAuthTag().copy(out, IV_BYTES);
    ct.copy(out, IV_BYTES + TAG_BYTES);
    return `${VERSION}:${out.toString('base64')}`;
  }

  /** Throws KeyDecryptError when the text was not sealed with this master key. */
  decrypt(sealed: string): string {
    if (!sealed.startsWith(`${VERSION}:`)) throw new KeyDecryptError('unknown ciphertext version');
    const buf = Buffer.from(sealed.slice(VERSION.length + 1), 'base64');
    if (buf.length < IV_BYTES + TAG_BYTES) throw new KeyDecryptError('ciphertext too short');
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#encKey, buf.subarray(0, IV_BYTES));
      decipher.setAuthTag(buf.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
      return Buffer.concat([decipher.update(buf.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
    } catch {
      throw new KeyDecryptError('cannot decrypt the key: was ENCRYPTION_KEY changed?');
    }
  }

  hash(plain: string): string {
    return createHmac('sha256', this.#hashKey).update(plain).digest('hex');
  }
}

export class KeyDecryptError extends Error {
  override name = 'KeyDecryptError';
}

/** The token of an `Authorization: Bearer <token>` header, or null. */
export function bearerToken(header: string | undefined): string | null {
  const m = /^Bearer[ \t]+(\S+)\s*$/i.exec(header ?? '');
  return m ? m[1]! : null;
}

/** Constant-time comparison of two secrets of any length. */
export function secretsEqual(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/** `tvly-dev-…a1b2`: the key's kind prefix and its last four characters. */
export function maskKey(key: string): string {
  const m = /^(tvly-(?:[a-z]+-)?)/.exec(key);
  const prefix = m?.[1] ?? '';
  if (key.length <= prefix.length + 8) return `${prefix}…`;
  return `${prefix}…${key.slice(-4)}`;
}

/** Masks arbitrary rejected input so that no secret-looking text is echoed back whole. */
export function maskInput(input: string): string {
  if (input.startsWith('tvly-')) return maskKey(input);
  if (input.length <= 8) return '*'.repeat(input.length);
  return `${input.slice(0, 2)}…${input.slice(-2)}`;
}

import fs from 'node:fs';
import path from 'node:path';
import type { Config } from './config.js';
import { generateEncryptionKey, generateToken, parseEncryptionKey } from './crypto.js';

export interface Secrets {
  adminToken: string;
  encryptionKey: Buffer;
  /** True when the admin token was generated now: the caller prints it once. */
  adminTokenGenerated: boolean;
}

export const ADMIN_TOKEN_FILE = 'admin-token';
export const ENCRYPTION_KEY_FILE = 'encryption-key';

/** Reads a secret file from dataDir, or creates it (mode 0600) with a generated value. */
function readOrCreate(dataDir: string, name: string, make: () => string): { value: string; created: boolean } {
  const file = path.join(dataDir, name);
  try {
    return { value: fs.readFileSync(file, 'utf8').trim(), created: false };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const value = make();
  try {
    fs.writeFileSync(file, `${value}\n`, { mode: 0o600, flag: 'wx' });
    return { value, created: true };
  } catch (err) {
    // Another process created it first: use theirs.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      return { value: fs.readFileSync(file, 'utf8').trim(), created: false };
    }
    throw err;
  }
}

export function resolveSecrets(config: Config): Secrets {
  const needsFiles = config.adminToken === undefined || config.encryptionKey === undefined;
  if (needsFiles) fs.mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });

  let adminToken = config.adminToken;
  let adminTokenGenerated = false;
  if (adminToken === undefined) {
    const r = readOrCreate(config.dataDir, ADMIN_TOKEN_FILE, () => generateToken('tpa_'));
    adminToken = r.value;
    adminTokenGenerated = r.created;
  }
  const keyText = config.encryptionKey ?? readOrCreate(config.dataDir, ENCRYPTION_KEY_FILE, generateEncryptionKey).value;
  return { adminToken, encryptionKey: parseEncryptionKey(keyText), adminTokenGenerated };
}

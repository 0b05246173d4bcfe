import type { KeyCipher } from '../crypto.js';

/**
 * Decrypted keys by id, so that a key is decrypted once per process rather than on every
 * refresh (and, later, every request). An entry is valid while its sealed text is unchanged.
 */
export class PlainKeyCache {
  readonly #entries = new Map<number, { sealed: string; plain: string }>();

  constructor(private readonly cipher: KeyCipher) {}

  /** The key's text; throws KeyDecryptError when the sealed text cannot be opened. */
  get(id: number, sealed: string): string {
    const hit = this.#entries.get(id);
    if (hit && hit.sealed === sealed) return hit.plain;
    const plain = this.cipher.decrypt(sealed);
    this.#entries.set(id, { sealed, plain });
    return plain;
  }

  /** Remembers a key whose text is known already (just imported): no decryption later. */
  set(id: number, sealed: string, plain: string): void {
    this.#entries.set(id, { sealed, plain });
  }

  /** Forgets every key not in `ids` (keys deleted since they were cached). */
  retain(ids: Iterable<number>): void {
    const keep = new Set(ids);
    for (const id of this.#entries.keys()) if (!keep.has(id)) this.#entries.delete(id);
  }

  get size(): number {
    return this.#entries.size;
  }
}

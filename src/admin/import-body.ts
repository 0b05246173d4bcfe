import type { IncomingMessage } from 'node:http';
import { isUtf8 } from 'node:buffer';
import type { FastifyRequest } from 'fastify';
import { ApiError } from '../http/api-error.js';
import { invalidUtf8, notUtf8 } from '../http/input.js';

/**
 * Key-import bodies, read with the key cap enforced while reading: a body with more keys than
 * the cap is refused as soon as the key after the cap arrives (413), not after it has all been
 * read, parsed and held in memory. Text finds keys as it goes; JSON counts the strings of its
 * arrays as it goes, and is parsed once complete.
 */

/** The keys found in a text/plain or text/csv body, and the account and label named beside each (null: none). */
export class KeyText {
  constructor(
    readonly keys: string[],
    readonly bytes: number,
    readonly accounts: (string | null)[] = [],
    readonly labels: (string | null)[] = [],
  ) {}
}

type Done = (err: Error | null, body?: unknown) => void;

const KEY_IN_TEXT = /tvly-[A-Za-z0-9_-]+/g;
/** What may still grow into a key at the end of a chunk: a run of key characters. */
const TRAILING_RUN = /[A-Za-z0-9_-]*$/;
/** A run longer than this holds no key that could be stored (keys are at most 205 characters). */
const MAX_CARRY = 512;

export function tooManyKeys(max: number): ApiError {
  return new ApiError(413, 'too_many_keys', `more than ${max.toLocaleString('en')} keys in one import: nothing was added; split the list into parts of at most ${max.toLocaleString('en')}`);
}

function tooLarge(limit: number): Error {
  return Object.assign(new Error(`request body is larger than ${limit} bytes (IMPORT_BODY_LIMIT_BYTES)`), { code: 'FST_ERR_CTP_BODY_TOO_LARGE', statusCode: 413 });
}

/** Reads the body, calling `onChunk` for each piece; stops (and answers) at the first error. */
function readLimited(req: FastifyRequest, payload: IncomingMessage, done: Done, onChunk: (chunk: Buffer) => Error | null, onEnd: (bytes: number) => unknown): void {
  const limit = req.routeOptions.bodyLimit ?? 1024 * 1024;
  const declared = Number(req.headers['content-length']);
  if (declared > limit) return done(tooLarge(limit));
  let bytes = 0;
  let finished = false;
  const finish = (err: Error | null, body?: unknown) => {
    if (finished) return;
    finished = true;
    payload.removeListener('data', onData);
    payload.removeListener('end', onEndEvent);
    payload.removeListener('error', onError);
    // A refused body's rest is read and thrown away (no parsing, no memory, within
    // REQUEST_TIMEOUT_MS): the answer goes out at once, and closing the connection while the
    // client still sends could make its kernel drop the answer (a reset).
    done(err, body);
  };
  const onData = (chunk: Buffer) => {
    bytes += chunk.length;
    if (bytes > limit) return finish(tooLarge(limit));
    const err = onChunk(chunk);
    if (err) finish(err);
  };
  const onEndEvent = () => {
    let body: unknown;
    try {
      body = onEnd(bytes);
    } catch (err) {
      return finish(err as Error);
    }
    finish(null, body);
  };
  const onError = (err: Error) => finish(err);
  payload.on('data', onData);
  payload.on('end', onEndEvent);
  payload.on('error', onError);
}

/** An e-mail address on a key's line: people keep their keys as `email => key` or `email,key`. */
const EMAIL = /[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/;
/** A line longer than this is not a line of a key list: its keys are taken, with no account. */
const MAX_LINE = 64 * 1024;
const KEY_COLUMNS = new Set(['key', 'api_key', 'apikey', 'api key', 'tavily_key', 'tavily key', 'token']);
const ACCOUNT_COLUMNS = new Set(['account', 'email', 'e-mail', 'account_name', 'account name', 'owner']);
const LABEL_COLUMNS = new Set(['label', 'name', 'note', 'description', 'comment']);
const MAX_LABEL = 200;

const cells = (line: string) => line.split(/[,;\t]/).map((c) => c.trim().replace(/^"(.*)"$/, '$1').trim());

/**
 * text/plain and text/csv: every `tvly-…` token, found while the body arrives, line by line.
 * A line with one key names its account when it holds an e-mail address (`email => key`,
 * `email,key`, `key  # email`), or when a CSV header names an `account` (or `email`) column; it
 * names its label in a `label` (or `name`) column, or as the one other cell of a `name,key` row.
 */
export function keyTextParser(maxKeys: number) {
  return (req: FastifyRequest, payload: IncomingMessage, done: Done): void => {
    // Fatal: bytes that are not UTF-8 refuse the body instead of turning into U+FFFD labels.
    const decoder = new TextDecoder('utf-8', { fatal: true });
    const decode = (chunk?: Buffer): string | Error => {
      try {
        return chunk ? decoder.decode(chunk, { stream: true }) : decoder.decode();
      } catch {
        return notUtf8();
      }
    };
    const keys: string[] = [];
    const accounts: (string | null)[] = [];
    const labels: (string | null)[] = [];
    let carry = '';
    /** The current line was too long: its keys are taken as they come, with no account. */
    let longLine = false;
    let header: { account: number; label: number } | null | undefined; // undefined: no non-empty line seen yet
    const take = (found: RegExpMatchArray | null, account: string | null, label: string | null = null): Error | null => {
      if (!found) return null;
      for (const k of found) {
        keys.push(k);
        accounts.push(found.length === 1 ? account : null);
        labels.push(found.length === 1 ? label : null);
      }
      return keys.length > maxKeys ? tooManyKeys(maxKeys) : null;
    };
    const line = (text: string): Error | null => {
      if (longLine) {
        longLine = false;
        return take(text.match(KEY_IN_TEXT), null);
      }
      const found = text.match(KEY_IN_TEXT);
      if (header === undefined && text.trim() !== '') {
        header = null;
        if (!found) {
          const names = cells(text).map((c) => c.toLowerCase());
          if (names.some((n) => KEY_COLUMNS.has(n))) {
            header = { account: names.findIndex((n) => ACCOUNT_COLUMNS.has(n)), label: names.findIndex((n) => LABEL_COLUMNS.has(n)) };
          }
          return null;
        }
      }
      if (!found || found.length !== 1) return take(found, null);
      let account: string | null = null;
      let label: string | null = null;
      const row = cells(text);
      if (header) {
        const cell = (i: number) => (i >= 0 && row[i] && !row[i]!.includes('tvly-') ? row[i]!.slice(0, MAX_LABEL) : null);
        account = cell(header.account);
        label = cell(header.label);
      } else {
        const email = EMAIL.exec(text.replace(found[0]!, ' '));
        if (email) account = email[0].toLowerCase();
        else {
          // `name,key`: the one other cell of the row is the key's name.
          const others = row.filter((c) => c !== '' && !c.includes('tvly-'));
          if (others.length === 1 && row.length === 2) label = others[0]!.slice(0, MAX_LABEL);
        }
      }
      return take(found, account || null, label || null);
    };
    const scan = (text: string, final: boolean): Error | null => {
      const lines = text.split('\n');
      carry = final ? '' : lines.pop()!;
      for (const l of lines) {
        const err = line(l);
        if (err) return err;
      }
      if (final) return null;
      if (carry.length > MAX_LINE) {
        // Take the keys of a giant line as they come, keeping what may still grow into a key.
        let upTo = TRAILING_RUN.exec(carry)!.index;
        if (carry.length - upTo > MAX_CARRY) upTo = carry.length - MAX_CARRY;
        const err = take(carry.slice(0, upTo).match(KEY_IN_TEXT), null);
        carry = carry.slice(upTo);
        longLine = true;
        return err;
      }
      return null;
    };
    readLimited(
      req,
      payload,
      done,
      (chunk) => {
        const text = decode(chunk);
        return text instanceof Error ? text : scan(carry + text, false);
      },
      (bytes) => {
        const rest = decode();
        if (rest instanceof Error) throw rest;
        const err = scan(carry + rest, true);
        if (err) throw err;
        return new KeyText(keys, bytes, accounts, labels);
      },
    );
  };
}

/** JSON: read whole (within the body limit), counting the strings inside arrays as they arrive, then parsed. */
export function countedJsonParser(maxKeys: number) {
  return (req: FastifyRequest, payload: IncomingMessage, done: Done): void => {
    const chunks: Buffer[] = [];
    // A small scanner: inside a string or not, escaped or not, and the kind of each open container.
    let inString = false;
    let escaped = false;
    const open: number[] = []; // 91 '[' or 123 '{'
    let strings = 0;
    const scan = (chunk: Buffer): Error | null => {
      for (let i = 0; i < chunk.length; i++) {
        const c = chunk[i]!;
        if (inString) {
          if (escaped) escaped = false;
          else if (c === 92) escaped = true;
          else if (c === 34) inString = false;
        } else if (c === 34) {
          inString = true;
          if (open.length === 2 && open[1] === 91 && ++strings > maxKeys) return tooManyKeys(maxKeys);
        } else if (c === 91 || c === 123) {
          // A key in the list may be an object ({"key", "account"}): it counts as one.
          if (c === 123 && open.length === 2 && open[1] === 91 && ++strings > maxKeys) return tooManyKeys(maxKeys);
          open.push(c);
        }
        else if (c === 93 || c === 125) open.pop();
      }
      return null;
    };
    readLimited(
      req,
      payload,
      done,
      (chunk) => {
        chunks.push(chunk);
        return scan(chunk);
      },
      (bytes) => {
        const raw = Buffer.concat(chunks, bytes);
        if (!isUtf8(raw)) throw invalidUtf8(raw);
        const text = raw.toString('utf8');
        if (text.trim() === '') return undefined;
        try {
          return JSON.parse(text) as unknown;
        } catch (err) {
          throw Object.assign(new SyntaxError((err as Error).message), { statusCode: 400 });
        }
      },
    );
  };
}

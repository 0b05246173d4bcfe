import type { IncomingMessage } from 'node:http';
import { StringDecoder } from 'node:string_decoder';
import type { FastifyRequest } from 'fastify';
import { ApiError } from './errors.js';

/**
 * Key-import bodies, read with the key cap enforced while reading: a body with more keys than
 * the cap is refused as soon as the key after the cap arrives (413), not after it has all been
 * read, parsed and held in memory. Text finds keys as it goes; JSON counts the strings of its
 * arrays as it goes, and is parsed once complete.
 */

/** The keys found in a text/plain or text/csv body. */
export class KeyText {
  constructor(
    readonly keys: string[],
    readonly bytes: number,
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

/** text/plain and text/csv: every `tvly-…` token, found while the body arrives. */
export function keyTextParser(maxKeys: number) {
  return (req: FastifyRequest, payload: IncomingMessage, done: Done): void => {
    const decoder = new StringDecoder('utf8');
    const keys: string[] = [];
    let carry = '';
    const scan = (text: string, final: boolean): Error | null => {
      let upTo = text.length;
      if (!final) {
        const run = TRAILING_RUN.exec(text)!;
        upTo = run.index;
        if (text.length - upTo > MAX_CARRY) upTo = text.length - MAX_CARRY;
      }
      const found = text.slice(0, upTo).match(KEY_IN_TEXT);
      carry = text.slice(upTo);
      if (found) {
        for (const k of found) keys.push(k);
        if (keys.length > maxKeys) return tooManyKeys(maxKeys);
      }
      return null;
    };
    readLimited(
      req,
      payload,
      done,
      (chunk) => scan(carry + decoder.write(chunk), false),
      (bytes) => {
        const err = scan(carry + decoder.end(), true);
        if (err) throw err;
        return new KeyText(keys, bytes);
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
        } else if (c === 91 || c === 123) open.push(c);
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
        const text = Buffer.concat(chunks, bytes).toString('utf8');
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

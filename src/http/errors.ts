import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError } from './api-error.js';
import { dbFault } from '../db/errors.js';

/** What an error means to a client: every route family renders it in its own envelope. */
export interface HttpProblem {
  statusCode: number;
  code: string;
  message: string;
}

/**
 * Maps any error thrown while handling a request to a client-facing problem. Request
 * faults become a 4xx that names what is wrong; anything else is a 500 that says nothing
 * internal (the caller logs it).
 */
export function describeError(err: unknown): HttpProblem {
  if (err instanceof ApiError) return { statusCode: err.statusCode, code: err.code, message: err.message };
  const e = err as Partial<FastifyError> & { validation?: unknown };
  if (e.validation) return { statusCode: 400, code: 'invalid_request', message: e.message ?? 'invalid request' };
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { statusCode: 413, code: 'payload_too_large', message: 'request body is too large' };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { statusCode: 415, code: 'unsupported_media_type', message: 'unsupported Content-Type: send application/json' };
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { statusCode: 400, code: 'invalid_json', message: 'request body is not valid JSON' };
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return { statusCode: 400, code: 'bad_request', message: 'Content-Length does not match the body' };
  }
  if (err instanceof SyntaxError && e.statusCode === 400) {
    return { statusCode: 400, code: 'invalid_json', message: `request body is not valid JSON: ${err.message}` };
  }
  switch (dbFault(err)) {
    case 'full':
      return { statusCode: 503, code: 'storage_full', message: 'the database is full (disk space or a size limit): nothing was changed; free space and try again' };
    case 'unavailable':
      return { statusCode: 503, code: 'database_unavailable', message: 'the database cannot be reached or is busy: nothing was changed; try again shortly' };
    default:
  }
  const status = e.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return { statusCode: status, code: 'bad_request', message: e.message ?? 'bad request' };
  }
  return { statusCode: 500, code: 'internal', message: 'internal error; the server log has the details' };
}

/** nginx's status for "the client closed the request": what the access log and the metrics show for it. */
export const CLIENT_CLOSED = 499;

/**
 * The client closed the connection while its request was being read (a cancelled call, a
 * killed agent). Nothing failed here and no one is left to answer: it is logged at info, not
 * as an error, and counted as 499. False for any other error.
 */
export function clientWentAway(err: unknown, req: FastifyRequest, reply: FastifyReply): boolean {
  const code = (err as { code?: string }).code;
  const gone = code === 'ECONNRESET' || code === 'ECONNABORTED' || code === 'ERR_STREAM_PREMATURE_CLOSE';
  if (!gone || !(req.raw.destroyed || req.raw.socket?.destroyed)) return false;
  req.log.info({ code }, 'the client closed the connection before its request was read');
  void reply.code(CLIENT_CLOSED).send();
  return true;
}

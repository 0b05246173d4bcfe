import { type Logger, pino } from 'pino';
import type { LogLevel } from './config.js';

/** JSON logs; credentials are redacted wherever they could appear. */
export function createLogger(level: LogLevel, destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      redact: {
        paths: ['req.headers.authorization', 'headers.authorization', 'authorization', 'api_key', '*.api_key', 'key', '*.key'],
        censor: '[redacted]',
      },
    },
    destination as never,
  );
}

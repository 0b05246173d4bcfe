import { type Static, Type } from '@sinclair/typebox';
import { Nullable } from './keys.js';

/** An audit row as the admin API answers it (by value: the dashboard shares its type). */
export const AuditObject = Type.Object({
  id: Type.Integer(),
  at: Type.String({ format: 'date-time' }),
  action: Type.String({ description: 'keys.add, keys.update, keys.delete, keys.bulk, keys.export, keys.refresh, accounts.*, tokens.*, alerts.*, admin.signin_failed, gateway.unknown_token' }),
  targets: Nullable(Type.Record(Type.String(), Type.Unknown(), { description: 'what it was done to: ids, names, counts (never a key or a token)' })),
  outcome: Type.String({ description: '`ok`, or `refused` for a refused credential (targets.attempts counts them)' }),
  remote_addr: Nullable(Type.String()),
  user_agent: Nullable(Type.String()),
});
export type AuditView = Static<typeof AuditObject>;

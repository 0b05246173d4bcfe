import type { FastifyRequest } from 'fastify';
import type { AuditLog } from '../audit/audit.js';
import type { GatewayCore } from '../gateway/core.js';
import type { TokenState } from '../gateway/tokens.js';

/** What every door needs: the core, and the audit log that counts refused tokens. */
export interface DoorDeps {
  gateway: GatewayCore;
  audit: Pick<AuditLog, 'refused'>;
}

/**
 * The client token a door was given (null: none), or the core's 401 saying what is wrong with
 * it. A refusal is counted per address and written a row a minute: a misconfigured client or a
 * probe shows up in the audit log without flooding it. The same for every door.
 */
export function clientToken(d: DoorDeps, req: FastifyRequest, presented: string | null): TokenState {
  try {
    return d.gateway.authenticate(presented);
  } catch (err) {
    d.audit.refused(req, 'gateway.unknown_token');
    throw err;
  }
}

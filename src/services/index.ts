import type { Instances } from '../cluster/instances.js';
import type { AccountService } from './accounts.js';
import type { AlertService } from './alerts.js';
import type { KeyService } from './keys.js';
import type { LogService } from './logs.js';
import type { TokenService } from './tokens.js';

/** The admin use cases, one service per concern: what the admin routes, the CLI's server side and tests call. */
export interface AdminServices {
  keys: KeyService;
  accounts: AccountService;
  tokens: TokenService;
  alerts: AlertService;
  logs: LogService;
  /** This instance and (PostgreSQL) the others, from their heartbeats. */
  instances: Pick<Instances, 'list'>;
}

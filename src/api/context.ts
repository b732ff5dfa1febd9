import type { FastifyRequest } from 'fastify';
import type { IpsService } from '../service/ips-service.js';
import type { TriggerService } from '../service/triggers.js';
import type { RetentionService } from '../service/retention.js';
import type { Authenticator, Principal } from './auth.js';
import type { Metrics } from './metrics.js';

/** What every route module gets. */
export interface ApiContext {
  service: IpsService;
  metrics: Metrics;
  triggers: TriggerService | null;
  sinkAllowedHosts: string[] | undefined;
  retention: RetentionService | null;
  principal(req: FastifyRequest): Principal;
  /** Who is calling; routes that revoke tokens tell it (its cache of verified tokens). */
  auth: Authenticator;
}

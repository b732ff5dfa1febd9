import type { FastifyRequest } from 'fastify';
import type { IpsService } from '../service/ips-service.js';
import type { Principal } from './auth.js';
import type { Metrics } from './metrics.js';

/** What every route module gets. */
export interface ApiContext {
  service: IpsService;
  metrics: Metrics;
  principal(req: FastifyRequest): Principal;
}

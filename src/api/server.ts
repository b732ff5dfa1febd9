import fs from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { describeError } from '../errors.js';
import { describeConfig, State } from '../state/index.js';
import { IpsService } from '../service/ips-service.js';
import type { ServiceConfig } from '../service/config.js';
import { buildApp } from './app.js';
import { setReadLimits } from '../io/limits.js';
import { Metrics } from './metrics.js';
import { defaultOwner, TriggerService } from '../service/triggers.js';
import { BackfillValidator } from '../service/backfill-validator.js';
import { RetentionService } from '../service/retention.js';

export interface RunningServer {
  app: FastifyInstance;
  triggers: TriggerService | null;
  /** Runs backfills' validation commands; null unless the configuration turns it on. */
  validator: BackfillValidator | null;
  service: IpsService;
  state: State;
  /** http://host:port of the listening socket (the real port when 0 was asked for). */
  url: string;
  close(): Promise<void>;
}

/**
 * Opens the state (migrating it), builds the API and listens. A sweep expires batches whose
 * lease ran out, so their changes go to the next prepare even when nobody reads the batch.
 */
export async function startServer(config: ServiceConfig, opts: { log?: (line: string) => void } = {}): Promise<RunningServer> {
  const log = opts.log ?? (() => {});
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(config.warehouse)) fs.mkdirSync(config.warehouse, { recursive: true });
  log(`state: ${describeConfig(config.database)} (configuration from ${config.sources.join(', ')})`);
  const state = await State.open(config.database);
  if (state.migration.applied.length) log(`migrations applied: ${state.migration.applied.join(', ')}`);
  setReadLimits(config.readLimits);
  const service = new IpsService(state, { warehouse: config.warehouse, tableAllowedLocations: config.tableAllowedLocations, icdcCatalog: config.icdcCatalog, maxBatchFiles: config.maxBatchFiles });
  const metrics = new Metrics();
  const triggers = config.triggers
    ? new TriggerService(service, {
      ...(config.replicaId ? { owner: config.replicaId } : {}),
      tickMs: config.tickMs,
      claimSeconds: config.claimSeconds,
      retryBaseMs: config.retryBaseMs,
      idleCheckMs: config.triggerIdleCheckSeconds * 1000,
      allowedHosts: config.sinkAllowedHosts,
      log,
      onEvent: (event) => metrics.triggers.inc({ event }),
    })
    : null;
  if (triggers) service.onRelease = () => triggers.poke('fire');
  // Every replica can run a pass by hand (the API); the background loop only where enabled.
  const retention = new RetentionService(state, {
    policy: config.retention.policy, intervalSeconds: config.retention.intervalSeconds, claimSeconds: config.claimSeconds,
    ...(config.replicaId ? { owner: config.replicaId } : {}), log,
  });
  let app: FastifyInstance;
  try {
    app = await buildApp({
      service, auth: config.auth, adminTokens: config.adminTokens, bodyLimitBytes: config.bodyLimitBytes, tokenCacheSeconds: config.tokenCacheSeconds, logLevel: config.logLevel,
      metrics, ...(triggers ? { triggers } : {}), sinkAllowedHosts: config.sinkAllowedHosts, retention,
      restCatalog: { vendCredentials: config.restVendCredentials },
    });
    await app.listen({ host: config.host, port: config.port });
  } catch (e) {
    service.close();
    await state.close();
    throw e;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  const url = `http://${host}:${port}`;
  await triggers?.start();
  const validator = config.backfillValidation
    ? new BackfillValidator(state, {
      owner: config.replicaId ?? triggers?.owner ?? defaultOwner(), tickMs: config.tickMs, claimSeconds: config.claimSeconds,
      passEnv: config.backfillValidationEnv, log: (line) => app.log.warn(line),
      onResult: (passed) => metrics.backfillValidations.inc({ result: passed ? 'passed' : 'failed' }),
    })
    : null;
  if (validator) {
    log('backfill validation commands run in this process (backfill_validation: on)');
    validator.start();
    // A chunk committed here is validated at once, not at the next tick.
    const previous = service.onRelease;
    service.onRelease = () => {
      previous?.();
      validator.poke();
    };
  }
  if (config.retention.enabled) retention.start();
  const sweep = setInterval(() => {
    (async () => {
      const expired = await state.repos.batches.load(await state.repos.batches.expireDue());
      // Their changes go to the next batch: a subscription fires again now, not at its next idle check.
      for (const consumer of new Set(expired.map((b) => b.consumer))) {
        if ((await state.repos.subscriptions.wake({ consumer })) > 0) triggers?.poke('fire');
      }
    })().catch((e: unknown) => app.log.warn(`lease sweep failed: ${describeError(e)}`));
  }, config.leaseSweepSeconds * 1000);
  sweep.unref();
  let closing: Promise<void> | null = null;
  return {
    app, service, state, url, triggers, validator,
    close() {
      closing ??= (async () => {
        clearInterval(sweep);
        await app.close();
        await validator?.stop();
        await triggers?.stop();
        await retention.stop();
        service.close();
        await state.close();
      })();
      return closing;
    },
  };
}

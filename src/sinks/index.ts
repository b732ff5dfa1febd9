/**
 * Sinks: where a subscription's triggers go (generic webhook, Netflix Maestro, Apache Airflow).
 *
 *   const config = parseSinkConfig(body.sink, { allowedHosts });   // IpsError INVALID_SINK
 *   store(sinkConfigToJson(config));                               // secrets in clear text, for the database only
 *   const sink = createSink(sinkConfigFromJson(stored), { allowedHosts, timeoutMs });
 *   const r = await sink.deliver(payload, { signal, attempt });     // throws SinkError (retryable or not)
 *   show(describeSinkConfig(config));                              // secrets and header values as "***"
 *
 * Secrets: a parsed SinkConfig holds `secret`/`token`/`password` as `Secret` (JSON.stringify,
 * String() and console.log print `***`). sinkConfigToJson() is the only way to get them back in
 * clear text (to store the config); sinkConfigFromJson() reads that back. A config stored with
 * JSON.stringify() by mistake has `***` as its secrets and is rejected by sinkConfigFromJson
 * (INVALID_SINK) instead of sending `***` as a credential.
 *
 * Every sink sends one HTTP request per delivery (plus Airflow's token exchange or duplicate
 * check), with a per-request timeout (default 10 s) combined with the caller's signal, and never
 * follows redirects. See webhook.ts, maestro.ts and airflow.ts for the request shapes.
 */
import { IpsError } from '../errors.js';
import { hostNotAllowed, type HostOptions, type SinkConfig } from './config.js';
import { DEFAULT_TIMEOUT_MS } from './http.js';
import { AirflowSink } from './airflow.js';
import { MaestroSink } from './maestro.js';
import { WebhookSink } from './webhook.js';
import type { Sink } from './types.js';

export {
  sinkConfigSchema,
  parseSinkConfig,
  describeSinkConfig,
  sinkConfigToJson,
  sinkConfigFromJson,
  hostNotAllowed,
  SINK_TYPES,
  type SinkConfig,
  type SinkConfigJson,
  type SinkType,
  type WebhookSinkConfig,
  type MaestroSinkConfig,
  type AirflowSinkConfig,
  type HostOptions,
} from './config.js';
export { maestroRequestId, airflowRunId, payloadToJson, AIRFLOW_RUN_ID_PATTERN, type TriggerPayloadJson, type TriggerTableJson } from './payload.js';
export { SinkError, isSinkError, type TriggerTable, type TriggerPayload, type TriggerRange, type RangeFlag, type DeliveryResult, type DeliverOptions, type Sink } from './types.js';
export { webhookEvent, webhookSignature, CLOUDEVENT_TYPE, SIGNATURE_HEADER, WebhookSink, type TriggerCloudEvent } from './webhook.js';
export { maestroRunParams, maestroStartRequest, MaestroSink, MAESTRO_RESERVED_PARAM_NAMES, MAESTRO_PARAM_LIMIT, MAESTRO_PARAMS_SIZE_LIMIT, MAESTRO_DEFAULT_USER, maestroEvaluatedSize, type MaestroParam, type MaestroStartRequest } from './maestro.js';
export { airflowTriggerBody, AirflowSink, type AirflowTriggerBody } from './airflow.js';
export { DEFAULT_TIMEOUT_MS } from './http.js';

export interface CreateSinkOptions extends HostOptions {
  /** Per-request timeout; default 10 s. */
  timeoutMs?: number;
}

/**
 * A sink for a parsed config. The host allowlist is checked again here: it may have changed
 * since the config was stored. Throws IpsError INVALID_SINK.
 */
export function createSink(config: SinkConfig, opts?: CreateSinkOptions): Sink {
  const why = hostNotAllowed(config.url, opts?.allowedHosts);
  if (why) throw new IpsError('INVALID_SINK', `${config.type} sink: url: ${why}`);
  const timeoutMs = opts?.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0 || timeoutMs > 600_000) {
    throw new IpsError('INVALID_ARGUMENT', `sink timeout must be a whole number of milliseconds between 1 and 600000, got ${String(timeoutMs)}`);
  }
  switch (config.type) {
    case 'webhook':
      return new WebhookSink(config, timeoutMs);
    case 'maestro':
      return new MaestroSink(config, timeoutMs);
    case 'airflow':
      return new AirflowSink(config, timeoutMs);
  }
}

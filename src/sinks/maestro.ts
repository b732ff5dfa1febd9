import { describeSinkConfig, revealHeaders, secretsOf, type MaestroSinkConfig } from './config.js';
import { excerpt, httpRequest, joinPath, parseJsonBody, statusError, type HttpContext } from './http.js';
import { maestroRequestId, stringifyJson } from './payload.js';
import { SinkError, type DeliverOptions, type DeliveryResult, type Sink, type TriggerPayload } from './types.js';

/**
 * Netflix Maestro: starts a workflow instance per trigger.
 *
 *   POST <url>/api/v3/workflows/<workflow_id>/versions/<version>/actions/start
 *   content-type: application/json
 *   user: <user>                       (Maestro's caller header; "ips" unless configured)
 *   authorization: Bearer <token>      (when configured)
 *
 *   { "initiator": { "type": "manual" },
 *     "request_id": maestroRequestId(dedupKey),
 *     "run_params": { <name>: <ParamDefinition>, … } }
 *
 * `request_id` is the name-based (v3) UUID of the dedup key, as Maestro's own triggers make
 * theirs; Maestro stores it as the instance uuid, unique per workflow, so a redelivery answers
 * 200 `DUPLICATED` instead of starting a second run.
 *
 * run_params (Maestro ParamDefinitions, `{type, value}`):
 *   subscription, consumer, batch_id, instance_id, seq, created_at     STRING
 *   source_tables                                                       STRING_ARRAY
 *   icdc_table, icdc_metadata_location, icdc_snapshot_id                STRING (first table)
 *   source_table, from_snapshot_id, to_snapshot_id                      STRING (one table only)
 *   icdc_tables, icdc_metadata_locations, from_snapshot_ids,
 *   to_snapshot_ids                                                     STRING_MAP by source table (several tables only)
 *   change_ranges       MAP: column → MAP { min: STRING, max: STRING, flag: STRING } (union over the tables)
 *   changed_partitions  STRING_ARRAY (union over the tables, first-seen order)
 *   partition_field, partition_values  STRING, STRING_ARRAY (a partition-complete firing only)
 *   signals, signal_params  STRING_ARRAY, MAP: name → STRING_MAP (a firing that consumed signals only)
 *   changed_partitions_by_table  MAP: table → STRING_ARRAY (several tables only)
 *   record_count, file_count, byte_count   LONG when a safe integer, else STRING (totals)
 *   changed_partitions_truncated  BOOLEAN true, only when the partition lists were left out to
 *                                 stay within Maestro's params size limit (the workflow then gets
 *                                 the full change set from `ips step prepare --instance-id`).
 * The partition lists are left out when Maestro would refuse the params as too large: Maestro
 * evaluates every param into one that holds both its `value` and its `evaluated_result` (plus
 * `evaluated_time`), about twice what is sent, and ParamEvaluator.paramsSizeCheck refuses a
 * workflow whose evaluated params serialize to more than JSONIFIED_PARAMS_STRING_SIZE_LIMIT
 * (750,000) characters with a 400. ips estimates that size from above (maestroEvaluatedSize)
 * and keeps it under the limit less a reserve for the workflow's own params and Maestro's.
 * A null value (no previous snapshot, no ICDC table, an unbounded range) is sent as "". Range
 * bounds that are not strings are stringified: objects and arrays as JSON, others with String().
 * The names avoid Maestro's reserved param names and stay far below its 128-param limit.
 *
 * Answers (HTTP 200, body WorkflowStartResponse):
 *   status CREATED        → started (runId = workflow_instance_id)
 *   status DUPLICATED     → duplicate (Maestro already has an instance with this request_id)
 *   status STOPPED        → non-retryable error: Maestro created the instance already stopped (its
 *                           run strategy, e.g. FIRST_ONLY with a run in progress). A retry with
 *                           the same request_id would only answer DUPLICATED, so the trigger needs
 *                           attention (abort the batch so the next one carries the changes, or
 *                           change the run strategy), not a silent success.
 *   status INTERNAL_ERROR → retryable (Maestro failed server-side; the request_id makes a retry safe)
 *   HTTP 408/425/429/5xx, network errors, timeouts → retryable
 *   HTTP 400/401/403/404/409/422 and others → non-retryable, with what to fix. Maestro answers
 *   400 when the `user` header is missing (User.build: "the user name cannot be null") and 404
 *   for `versions/active` of a workflow without an active version ("Cannot find an active
 *   version for workflow [id]", MaestroWorkflowDao.deriveVersionId).
 */

export type MaestroParam =
  | { type: 'STRING'; value: string }
  | { type: 'LONG'; value: number }
  | { type: 'BOOLEAN'; value: boolean }
  | { type: 'STRING_ARRAY'; value: string[] }
  | { type: 'STRING_MAP'; value: Record<string, string> }
  | { type: 'MAP'; value: Record<string, MaestroParam> };

/** Constants.RESERVED_PARAM_NAMES in Maestro. */
export const MAESTRO_RESERVED_PARAM_NAMES: readonly string[] = [
  'maestro', 'Maestro', 'MAESTRO', 'scheduler', 'Scheduler', 'SCHEDULER', 'util', 'Util', 'UTIL', 'params', 'Params', 'PARAMS',
  'AUTH_BLOB', 'AUTH_DATA', 'AUTH_ACTING_ON_BEHALF_OF_BLOB', 'AUTH_TRIGGERING_ON_BEHALF_OF_BLOB', 'AUTHORIZED_MANAGERS',
];
/** Constants.PARAM_MAP_SIZE_LIMIT. */
export const MAESTRO_PARAM_LIMIT = 128;
/** Constants.JSONIFIED_PARAMS_STRING_SIZE_LIMIT: the evaluated params of an instance, as JSON. */
export const MAESTRO_PARAMS_SIZE_LIMIT = 750_000;
/** Left for the params ips does not send: the workflow's own (defaults) and those Maestro adds. */
export const MAESTRO_PARAMS_RESERVE = 50_000;
/** The caller ips names in Maestro's `user` header when the sink configures none. */
export const MAESTRO_DEFAULT_USER = 'ips';

/** A param's plain value, as Maestro's evaluated_result holds it (MAP: nested values). */
function evaluatedResult(p: MaestroParam): unknown {
  if (p.type === 'MAP') return Object.fromEntries(Object.entries(p.value).map(([k, v]) => [k, evaluatedResult(v)]));
  return p.value;
}

/**
 * An upper estimate of the length of Maestro's JSON of these params once evaluated: each one
 * serialized with its `value` (as sent), `evaluated_result` (the plain value again), an
 * `evaluated_time` and room for the fields Maestro fills in (mode, source, meta).
 */
export function maestroEvaluatedSize(params: Record<string, MaestroParam>): number {
  let size = 2;
  for (const [name, def] of Object.entries(params)) {
    size += stringifyJson(name).length + 1 + stringifyJson(def).length + ',"evaluated_result":'.length + stringifyJson(evaluatedResult(def)).length +
      ',"evaluated_time":1234567890123'.length + 80;
  }
  return size;
}
const PARAMS_BUDGET = MAESTRO_PARAMS_SIZE_LIMIT - MAESTRO_PARAMS_RESERVE;

export interface MaestroStartRequest {
  initiator: { type: 'manual' };
  request_id: string;
  run_params: Record<string, MaestroParam>;
}

const str = (v: string | null | undefined): MaestroParam => ({ type: 'STRING', value: v ?? '' });

/** A range bound as a STRING param value. */
export function boundToString(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'object') return stringifyJson(v);
  return String(v);
}

function integer(p: TriggerPayload, field: 'recordCount' | 'byteCount' | 'fileCount'): bigint {
  let total = 0n;
  for (const t of p.tables) {
    const v = String(t[field]);
    if (!/^\d{1,20}$/.test(v)) throw new SinkError(`maestro: invalid trigger payload: ${field} of table ${t.table} is ${JSON.stringify(v)}, not a non-negative integer`, false);
    total += BigInt(v);
  }
  return total;
}

function longOrString(v: bigint): MaestroParam {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? { type: 'LONG', value: Number(v) } : { type: 'STRING', value: v.toString() };
}

function byTable(p: TriggerPayload, pick: (t: TriggerPayload['tables'][number]) => string | null): MaestroParam {
  return { type: 'STRING_MAP', value: Object.fromEntries(p.tables.map((t) => [t.table, pick(t) ?? ''])) };
}

/** The typed run_params for a trigger (see the module doc). */
export function maestroRunParams(p: TriggerPayload): Record<string, MaestroParam> {
  const first = p.tables[0];
  const several = p.tables.length > 1;
  const params: Record<string, MaestroParam> = {
    subscription: str(p.subscription),
    consumer: str(p.consumer),
    batch_id: str(p.batchId),
    instance_id: str(p.instanceId),
    seq: str(p.seq),
    created_at: str(p.createdAt),
    source_tables: { type: 'STRING_ARRAY', value: p.tables.map((t) => t.table) },
    icdc_table: str(first?.icdcTable),
    icdc_metadata_location: str(first?.icdcMetadataLocation),
    icdc_snapshot_id: str(first?.icdcSnapshotId),
  };
  if (!several) {
    params.source_table = str(first?.table);
    params.from_snapshot_id = str(first?.fromSnapshotId);
    params.to_snapshot_id = str(first?.toSnapshotId);
  } else {
    params.icdc_tables = byTable(p, (t) => t.icdcTable);
    params.icdc_metadata_locations = byTable(p, (t) => t.icdcMetadataLocation);
    params.from_snapshot_ids = byTable(p, (t) => t.fromSnapshotId);
    params.to_snapshot_ids = byTable(p, (t) => t.toSnapshotId);
  }
  const ranges: Record<string, MaestroParam> = {};
  for (const [col, r] of Object.entries(p.ranges)) {
    ranges[col] = {
      type: 'MAP',
      value: { min: str(boundToString(r.min)), max: str(boundToString(r.max)), flag: str(r.flag) },
    };
  }
  params.change_ranges = { type: 'MAP', value: ranges };
  if (p.backfill) {
    // A backfill chunk: name, chunk, chunks and the chunk's range keys (predicate, min, max, …) as strings.
    params.backfill = {
      type: 'STRING_MAP',
      value: {
        name: p.backfill.name, chunk: String(p.backfill.chunk), chunks: String(p.backfill.chunks),
        ...Object.fromEntries(Object.entries(p.backfill.range).map(([k, v]) => [`range_${k}`, boundToString(v) ?? ''])),
      },
    };
  }
  if (p.partition) {
    // Partition-complete: the field and the values this trigger announces.
    params.partition_field = str(p.partition.field);
    params.partition_values = { type: 'STRING_ARRAY', value: [...p.partition.values] };
  }
  if (p.signals) {
    // Consumed signals: their names, and per name the parameters of the signal consumed.
    params.signals = { type: 'STRING_ARRAY', value: p.signals.map((g) => g.name) };
    params.signal_params = { type: 'MAP', value: Object.fromEntries(p.signals.map((g) => [g.name, { type: 'STRING_MAP', value: { ...g.params } } satisfies MaestroParam])) };
  }
  params.record_count = longOrString(integer(p, 'recordCount'));
  params.file_count = longOrString(integer(p, 'fileCount'));
  params.byte_count = longOrString(integer(p, 'byteCount'));

  const partitions = [...new Set(p.tables.flatMap((t) => t.changedPartitions))];
  const withPartitions: Record<string, MaestroParam> = { ...params, changed_partitions: { type: 'STRING_ARRAY', value: partitions } };
  if (several) {
    withPartitions.changed_partitions_by_table = {
      type: 'MAP',
      value: Object.fromEntries(p.tables.map((t) => [t.table, { type: 'STRING_ARRAY', value: [...t.changedPartitions] } satisfies MaestroParam])),
    };
  }
  let out = withPartitions;
  if (maestroEvaluatedSize(withPartitions) > PARAMS_BUDGET) {
    out = { ...params, changed_partitions_truncated: { type: 'BOOLEAN', value: true } };
    const size = maestroEvaluatedSize(out);
    if (size > PARAMS_BUDGET) {
      throw new SinkError(
        `maestro: the run params of batch ${p.batchId} would exceed Maestro's params size limit (${MAESTRO_PARAMS_SIZE_LIMIT} characters once evaluated; about ${size} ` +
          `without the partition lists) because of ${Object.keys(p.ranges).length} ranged columns with long bounds: give the consumer fewer --range fields`,
        false,
      );
    }
  }
  checkMaestroParams(out);
  return out;
}

/** Maestro's RunParamsConstraint: at most 128 params, no reserved names. */
export function checkMaestroParams(params: Record<string, MaestroParam>): void {
  const names = Object.keys(params);
  if (names.length > MAESTRO_PARAM_LIMIT) throw new SinkError(`maestro: ${names.length} run params exceed Maestro's limit of ${MAESTRO_PARAM_LIMIT}`, false);
  const reserved = names.find((n) => MAESTRO_RESERVED_PARAM_NAMES.includes(n));
  if (reserved !== undefined) throw new SinkError(`maestro: run param "${reserved}" is reserved by Maestro`, false);
}

export function maestroStartRequest(p: TriggerPayload): MaestroStartRequest {
  return { initiator: { type: 'manual' }, request_id: maestroRequestId(p.dedupKey), run_params: maestroRunParams(p) };
}

export class MaestroSink implements Sink {
  readonly type = 'maestro' as const;

  constructor(
    private readonly config: MaestroSinkConfig,
    private readonly timeoutMs: number,
  ) {}

  describe(): Record<string, unknown> {
    return describeSinkConfig(this.config);
  }

  startUrl(): URL {
    return joinPath(this.config.url, ['api', 'v3', 'workflows', this.config.workflow_id, 'versions', this.config.version, 'actions', 'start']);
  }

  async deliver(p: TriggerPayload, opts?: DeliverOptions): Promise<DeliveryResult> {
    const ctx: HttpContext = { label: 'maestro', timeoutMs: this.timeoutMs, signal: opts?.signal, secrets: secretsOf(this.config) };
    const body = stringifyJson(maestroStartRequest(p));
    const headers: Record<string, string> = { ...revealHeaders(this.config.headers), 'content-type': 'application/json', accept: 'application/json' };
    // Maestro reads the caller from the "user" header and answers 400 without it.
    if (this.config.user !== undefined) headers.user = this.config.user;
    else if (!Object.keys(headers).some((k) => k.toLowerCase() === 'user')) headers.user = MAESTRO_DEFAULT_USER;
    if (this.config.token !== undefined) headers.authorization = `Bearer ${this.config.token.reveal()}`;
    const url = this.startUrl();
    const res = await httpRequest(ctx, 'POST', url, headers, body);
    const wf = `workflow "${this.config.workflow_id}" version "${this.config.version}"`;
    if (res.status < 200 || res.status >= 300) throw statusError(ctx, 'POST', url, res, this.hint(res.status, wf));

    const json = parseJsonBody(res.text) as Record<string, unknown> | undefined;
    const status = json && typeof json === 'object' ? json.status : undefined;
    if (typeof status !== 'string') {
      throw new SinkError(`maestro: POST ${url.origin}${url.pathname} answered ${res.status} without a WorkflowStartResponse status (${excerpt(res.text, ctx.secrets) || 'empty body'}): is the url the Maestro server's base URL?`, false, res.status);
    }
    const iid = json!.workflow_instance_id;
    const rid = json!.workflow_run_id;
    const hasIid = (typeof iid === 'number' && iid > 0) || (typeof iid === 'string' && /^[1-9]\d*$/.test(iid));
    const detail = `Maestro ${status} for ${wf}${hasIid ? ` instance ${String(iid)}${rid !== undefined ? ` run ${String(rid)}` : ''}` : ''}`;
    switch (status.toUpperCase()) {
      case 'CREATED':
        return { outcome: 'started', status: res.status, ...(hasIid ? { runId: String(iid) } : {}), detail };
      case 'DUPLICATED':
        return { outcome: 'duplicate', status: res.status, ...(hasIid ? { runId: String(iid) } : {}), detail: `${detail}: an instance with request_id ${maestroRequestId(p.dedupKey)} already exists` };
      case 'STOPPED':
        throw new SinkError(
          `maestro: ${wf} created the instance for batch ${p.batchId} already STOPPED (its run strategy, e.g. FIRST_ONLY while another run is in progress, stopped it); ` +
            'a retry would only answer DUPLICATED. Abort the batch so the next trigger carries its changes, or change the workflow\'s run strategy (e.g. SEQUENTIAL)',
          false,
          res.status,
        );
      case 'INTERNAL_ERROR':
        throw new SinkError(`maestro: ${wf} answered INTERNAL_ERROR for the start request (will retry; the request_id makes a retry safe)`, true, res.status);
      default:
        throw new SinkError(`maestro: ${wf} answered an unknown start status ${JSON.stringify(status.slice(0, 40))}`, false, res.status);
    }
  }

  private hint(status: number, wf: string): string {
    switch (status) {
      case 400:
        return `Maestro rejected the start request for ${wf}: check the run params against the workflow's param definitions (types, and modes that forbid overriding at start), and that the caller in "user" (default "${MAESTRO_DEFAULT_USER}") is one Maestro accepts`;
      case 401:
      case 403:
        return `Maestro refused the caller: check the sink's "user" and "token" and the caller's permissions on ${wf}`;
      case 404:
        return this.config.version.toLowerCase() === 'active'
          ? `Maestro has no ${wf}: the workflow does not exist, or it is inactive (no active version); create it, activate a version ` +
              `(PUT /api/v3/workflows/${this.config.workflow_id}/versions/{version}/actions/activate), or fix "workflow_id"/"version" in the sink`
          : `Maestro has no ${wf}: create the workflow, or fix "workflow_id"/"version" in the sink`;
      case 405:
        return 'Check that "url" is the Maestro server\'s base URL (the sink appends /api/v3/…)';
      case 409:
        return `Maestro refused to start ${wf} (conflict): see Maestro's message, fix the workflow, then retry the delivery`;
      case 422:
        return `Maestro could not process the start request for ${wf}: the workflow may be inactive, or the run params conflict with its param definitions; see Maestro's message`;
      default:
        return `Fix the Maestro sink config or ${wf}, then retry the delivery`;
    }
  }
}

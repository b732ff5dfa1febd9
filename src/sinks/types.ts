/**
 * What a sink receives and returns. A sink turns one trigger (a prepared batch of one
 * subscription) into one orchestrator request; the delivery worker retries it with backoff while
 * the error says `retryable`, and every sink makes a redelivery of the same batch harmless: the
 * dedup key becomes the webhook's `Idempotency-Key` and CloudEvent `id`, Maestro's `request_id`
 * (a name-based UUID of it) and Airflow's `dag_run_id`.
 *
 * 64-bit ids and counts are decimal strings.
 */

export type RangeFlag = 'exact' | 'conservative' | 'unbounded';

export interface TriggerRange {
  min: unknown;
  max: unknown;
  flag: RangeFlag;
}

export interface TriggerTable {
  /** Source table name. */
  table: string;
  /** Exclusive; null for the consumer's first batch. */
  fromSnapshotId: string | null;
  toSnapshotId: string;
  /** The ICDC table holding the change set, e.g. `icdc.consumer__table`. */
  icdcTable: string | null;
  icdcMetadataLocation: string | null;
  icdcSnapshotId: string | null;
  fileCount: number;
  recordCount: string;
  byteCount: string;
  /** Per column: the range of the changed values. */
  ranges: Record<string, TriggerRange>;
  /** Partition names as engines write them, e.g. `event_day=2026-11-01`. */
  changedPartitions: string[];
}

export interface TriggerPayload {
  subscription: string;
  consumer: string;
  /** Decimal 64-bit; null for a trigger fired by signals alone (no changes, no batch). */
  batchId: string | null;
  /**
   * The batch's instance id: the workflow passes it to `ips step prepare --instance-id` (and
   * gets the same batch) or commits `batchId`.
   */
  instanceId: string | null;
  /** Per-subscription sequence number of this trigger (decimal). */
  seq: string;
  /** Stable per batch: the same on every redelivery. */
  dedupKey: string;
  tables: TriggerTable[];
  /** Union over the tables. */
  ranges: Record<string, { min: unknown; max: unknown; flag: string }>;
  /** ISO 8601. */
  createdAt: string;
  /** Set when the batch is a chunk of a managed backfill: which one, and the range its rows are filtered by. */
  backfill?: TriggerBackfill;
  /** A partition-complete condition fired: the field and the values this trigger announces (each once per subscription). */
  partition?: TriggerPartition;
  /** The signals this firing consumed (required by the subscription's condition). */
  signals?: TriggerSignal[];
}

export interface TriggerPartition {
  /** The partition field, e.g. `event_ts_day`. */
  field: string;
  /** Its values as engines name them (`2026-11-02`), in order. */
  values: string[];
  /** Those of `values` fired because they went quiet rather than complete. */
  quietValues: string[];
}

export interface TriggerSignal {
  id: string;
  name: string;
  params: Record<string, string>;
  sender: string;
  /** An output signal: the consumer and batch whose commit announced it. */
  consumer: string | null;
  batchId: string | null;
  createdAt: string;
}

export interface TriggerBackfill {
  name: string;
  /** 0-based chunk index, of `chunks`. */
  chunk: number;
  chunks: number;
  range: Record<string, unknown>;
}

export interface DeliveryResult {
  /** `duplicate`: the orchestrator already had this run (Maestro DUPLICATED, Airflow 409, webhook 409). Counts as delivered. */
  outcome: 'started' | 'duplicate';
  /** HTTP status of the start request. */
  status: number;
  /** The orchestrator's run id when known (Maestro workflow instance id, Airflow dag_run_id). */
  runId?: string;
  detail?: string;
}

/**
 * A failed delivery. `retryable`: the same request may succeed later (network errors, timeouts,
 * 408/425/429/5xx); otherwise the configuration or the orchestrator's state must change first and
 * the message says what to fix. Messages never contain secrets or URL query strings.
 */
export class SinkError extends Error {
  /** From a `Retry-After` header (429/503), when the server sent one. */
  readonly retryAfterMs: number | undefined;

  constructor(
    message: string,
    readonly retryable: boolean,
    readonly status?: number,
    options?: { retryAfterMs?: number; cause?: unknown },
  ) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'SinkError';
    this.retryAfterMs = options?.retryAfterMs;
  }
}

export function isSinkError(e: unknown): e is SinkError {
  return e instanceof SinkError;
}

export interface DeliverOptions {
  /** Aborts the request (e.g. on shutdown); the delivery then fails as retryable. */
  signal?: AbortSignal;
  /** 1-based attempt number. The built-in sinks send the same request on every attempt and do not use it. */
  attempt?: number;
}

export interface Sink {
  readonly type: 'webhook' | 'maestro' | 'airflow';
  /** Throws SinkError. */
  deliver(p: TriggerPayload, opts?: DeliverOptions): Promise<DeliveryResult>;
  /** The config as safe JSON (secrets and header values as "***"). */
  describe(): Record<string, unknown>;
}

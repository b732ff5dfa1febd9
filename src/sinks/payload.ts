import crypto from 'node:crypto';
import type { TriggerPayload, TriggerTable } from './types.js';

/**
 * Maestro's deterministic request id: `UUID.nameUUIDFromBytes(dedupKey.getBytes(UTF_8))`, as
 * Maestro's own `IdHelper.createUuid` does it: the MD5 of the bytes with the version nibble set
 * to 3 and the IETF variant bits (10xx), printed lower-case.
 */
export function maestroRequestId(dedupKey: string): string {
  const b = crypto.createHash('md5').update(Buffer.from(dedupKey, 'utf8')).digest();
  b[6] = (b[6]! & 0x0f) | 0x30;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Airflow's default `allowed_run_id_pattern`; run ids are unique per DAG and at most 250 characters. */
export const AIRFLOW_RUN_ID_PATTERN = /^[A-Za-z0-9_.~:+-]+$/;
const AIRFLOW_RUN_ID_MAX = 250;

/**
 * The Airflow `dag_run_id` of a trigger: `ips__<dedup key>__<hash>`. The readable part is the
 * dedup key with every character outside `[A-Za-z0-9_.~:+-]` replaced by `_`, cut to 200
 * characters; the hash (first 16 hex digits of SHA-256 of the whole key) keeps keys that differ
 * only in replaced or cut characters apart. The `ips__` prefix keeps clear of Airflow's own
 * `manual__`/`scheduled__`/`backfill__`/`asset_triggered__` ids.
 */
export function airflowRunId(p: Pick<TriggerPayload, 'dedupKey'>): string {
  const readable = p.dedupKey.replace(/[^A-Za-z0-9_.~:+-]/g, '_').slice(0, 200);
  const hash = crypto.createHash('sha256').update(p.dedupKey, 'utf8').digest('hex').slice(0, 16);
  const id = `ips__${readable}__${hash}`;
  // Both hold by construction; kept as a guard against future edits.
  if (id.length > AIRFLOW_RUN_ID_MAX || !AIRFLOW_RUN_ID_PATTERN.test(id)) throw new Error(`internal: invalid Airflow run id ${id}`);
  return id;
}

export interface RangeJson {
  min: unknown;
  max: unknown;
  flag: string;
}

export interface TriggerTableJson {
  table: string;
  from_snapshot_id: string | null;
  to_snapshot_id: string;
  icdc_table: string | null;
  icdc_metadata_location: string | null;
  icdc_snapshot_id: string | null;
  file_count: number;
  record_count: string;
  byte_count: string;
  ranges: Record<string, RangeJson>;
  changed_partitions: string[];
}

/** The payload as the webhook's CloudEvent `data` and Airflow's `conf`. */
export interface TriggerPayloadJson {
  subscription: string;
  consumer: string;
  batch_id: string | null;
  instance_id: string | null;
  seq: string;
  dedup_key: string;
  created_at: string;
  tables: TriggerTableJson[];
  ranges: Record<string, RangeJson>;
  /** A backfill chunk: {name, chunk, chunks, range}. */
  backfill?: TriggerPayload['backfill'];
  partition?: { field: string; values: string[]; quiet_values: string[] };
  signals?: { id: string; name: string; params: Record<string, string>; sender: string; consumer: string | null; batch_id: string | null; created_at: string }[];
}

/** JSON-safe bound: bigints become decimal strings, everything else is kept. */
function jsonBound(v: unknown): unknown {
  if (typeof v === 'bigint') return v.toString();
  if (v === undefined) return null;
  return v;
}

function rangesJson(r: Record<string, { min: unknown; max: unknown; flag: string }>): Record<string, RangeJson> {
  const out: Record<string, RangeJson> = {};
  for (const [col, v] of Object.entries(r)) out[col] = { min: jsonBound(v.min), max: jsonBound(v.max), flag: v.flag };
  return out;
}

function tableJson(t: TriggerTable): TriggerTableJson {
  return {
    table: t.table,
    from_snapshot_id: t.fromSnapshotId,
    to_snapshot_id: t.toSnapshotId,
    icdc_table: t.icdcTable,
    icdc_metadata_location: t.icdcMetadataLocation,
    icdc_snapshot_id: t.icdcSnapshotId,
    file_count: t.fileCount,
    record_count: t.recordCount,
    byte_count: t.byteCount,
    ranges: rangesJson(t.ranges),
    changed_partitions: [...t.changedPartitions],
  };
}

/** The payload in snake_case JSON (column names inside `ranges` are kept as they are). */
export function payloadToJson(p: TriggerPayload): TriggerPayloadJson {
  return {
    subscription: p.subscription,
    consumer: p.consumer,
    batch_id: p.batchId,
    instance_id: p.instanceId,
    seq: p.seq,
    dedup_key: p.dedupKey,
    created_at: p.createdAt,
    tables: p.tables.map(tableJson),
    ranges: rangesJson(p.ranges),
    ...(p.backfill ? { backfill: p.backfill } : {}),
    ...(p.partition ? { partition: { field: p.partition.field, values: [...p.partition.values], quiet_values: [...p.partition.quietValues] } } : {}),
    ...(p.signals ? {
      signals: p.signals.map((g) => ({ id: g.id, name: g.name, params: { ...g.params }, sender: g.sender, consumer: g.consumer, batch_id: g.batchId, created_at: g.createdAt })),
    } : {}),
  };
}

/** JSON.stringify that writes bigints (should any reach a payload) as decimal strings. */
export function stringifyJson(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x));
}

import { describeSourceTable, int64ToJson, positionToJson, type ApiToken, type Batch, type Consumer, type Watermark } from '../state/index.js';
import type { ConsumerView, TableView } from '../service/ips-service.js';
import type { Lag, LagResult } from '../service/lag.js';
import type { Snapshot } from '../iceberg/metadata.js';

/**
 * The wire form of every entity: snake_case, 64-bit values (ids, sequence numbers, byte and
 * record counts) as decimal strings so that no JSON client rounds them, instants in ISO 8601.
 */

export function snapshotJson(s: Snapshot | null): Record<string, unknown> | null {
  if (!s) return null;
  return {
    snapshot_id: s.snapshotId.toString(),
    sequence_number: s.sequenceNumber.toString(),
    timestamp_ms: s.timestampMs.toString(),
    operation: s.operation,
  };
}

function lagJson(l: Lag): Record<string, unknown> {
  return { snapshots: l.snapshots, files: l.files.toString(), files_added: l.filesAdded.toString(), files_removed: l.filesRemoved.toString(), bytes: l.bytes.toString(), records: l.records.toString(), estimated: l.estimated,
    // How long it has been behind: the commit time of the oldest snapshot it has not fully processed.
    oldest_pending_at: l.oldestPendingMs === null ? null : new Date(Number(l.oldestPendingMs)).toISOString() };
}

function lagResultJson(r: LagResult): Record<string, unknown> {
  return r.ok ? { lag: lagJson(r.lag), lag_error: null } : { lag: null, lag_error: { code: r.code, message: r.message } };
}

export function watermarkJson(w: Watermark): Record<string, unknown> {
  return {
    table: w.sourceTable,
    ...positionToJson(w),
    version: w.version.toString(),
    range_fields: w.rangeFields,
    updated_at: w.updatedAt.toISOString(),
  };
}

export function tableViewJson(v: TableView, onlyConsumer?: string): Record<string, unknown> {
  const rows = onlyConsumer === undefined ? v.consumers : v.consumers.filter((c) => c.watermark.consumer === onlyConsumer);
  return {
    ...describeSourceTable(v.table),
    head: snapshotJson(v.head),
    load_error: v.loadError,
    // For snapshot-expiry jobs: keep this snapshot and its descendants.
    oldest_needed: onlyConsumer !== undefined || v.oldestNeeded === null ? null : {
      consumer: v.oldestNeeded.consumer,
      snapshot_id: int64ToJson(v.oldestNeeded.snapshotId),
      sequence_number: int64ToJson(v.oldestNeeded.sequenceNumber),
      full_history: v.oldestNeeded.fullHistory,
      // Set when a running backfill holds the history back (it pins the snapshot it was planned on).
      ...(v.oldestNeeded.backfill !== undefined ? { backfill: v.oldestNeeded.backfill } : {}),
    },
    consumers: rows.map((c) => ({
      consumer: c.watermark.consumer,
      state: c.consumerState,
      watermark: watermarkJson(c.watermark),
      ...lagResultJson(c.lag),
    })),
  };
}

export function consumerJson(c: Consumer): Record<string, unknown> {
  return {
    name: c.name,
    description: c.description,
    state: c.state,
    state_reason: c.stateReason,
    policy: c.policy,
    lease_seconds: c.leaseSeconds,
    mode: c.mode,
    properties: c.properties,
    created_at: c.createdAt.toISOString(),
    updated_at: c.updatedAt.toISOString(),
  };
}

export function consumerViewJson(v: ConsumerView): Record<string, unknown> {
  return {
    ...consumerJson(v.consumer),
    tables: v.watermarks.map(watermarkJson),
    open_batches: v.openBatches.map((b) => ({ id: b.id.toString(), instance_id: b.instanceId, lease_expires_at: b.leaseExpiresAt.toISOString(), ...(b.backfill !== null ? { backfill: b.backfill } : {}) })),
    outputs: v.outputs,
  };
}

export function batchJson(b: Batch): Record<string, unknown> {
  return {
    id: b.id.toString(),
    consumer: b.consumer,
    instance_id: b.instanceId,
    state: b.state,
    state_reason: b.stateReason,
    limits: {
      max_files: b.limits.maxFiles ?? null,
      max_bytes: int64ToJson(b.limits.maxBytes),
      max_records: int64ToJson(b.limits.maxRecords),
    },
    lease_expires_at: b.leaseExpiresAt.toISOString(),
    created_at: b.createdAt.toISOString(),
    closed_at: b.closedAt?.toISOString() ?? null,
    backfill: b.backfill === null ? null : { name: b.backfill, chunk: b.backfillChunk },
    tables: b.tables.map((t) => ({
      table: t.sourceTable,
      from_snapshot_id: int64ToJson(t.fromSnapshotId),
      from_sequence_number: int64ToJson(t.fromSequenceNumber),
      to_snapshot_id: t.toSnapshotId.toString(),
      to_sequence_number: t.toSequenceNumber.toString(),
      file_count: t.fileCount,
      byte_count: t.byteCount.toString(),
      record_count: t.recordCount.toString(),
      icdc: t.icdc === null ? null : { table: t.icdc.table, snapshot_id: t.icdc.snapshotId.toString(), metadata_location: t.icdc.metadataLocation },
      // A mode-rows consumer's batch: its rows as an Iceberg changelog table (null otherwise).
      row_changelog: t.rowChangelog === null ? null : {
        table: t.rowChangelog.table, snapshot_id: t.rowChangelog.snapshotId.toString(),
        metadata_location: t.rowChangelog.metadataLocation, record_count: t.rowChangelog.recordCount.toString(),
      },
      ranges: (t.ranges as { ranges?: unknown }).ranges ?? {},
      changed_partitions: (t.ranges as { changed_partitions?: unknown }).changed_partitions ?? [],
      base_watermark_version: t.baseWatermarkVersion.toString(),
      commits_to: positionToJson(t.next),
      // Present when read (listings read file lists only when asked for); empty once retention dropped them.
      ...(t.filesLoaded ? { files: t.files } : {}),
      files_pruned_at: t.filesPrunedAt?.toISOString() ?? null,
    })),
  };
}

export function tokenJson(t: ApiToken): Record<string, unknown> {
  return {
    id: t.id.toString(),
    prefix: t.prefix,
    description: t.description,
    consumer: t.consumer,
    scopes: t.scopes,
    created_at: t.createdAt.toISOString(),
    revoked_at: t.revokedAt?.toISOString() ?? null,
  };
}

import { z } from 'zod';
import { IpsError } from '../errors.js';
import { CONTENT_NAMES, type FileJson } from '../capture/file-json.js';
import { checkName, int64FromJson, int64String, int64ToJson, int8Array, newId, parseInput, parseRow } from './common.js';
import { jsonParam, sqlState, SQLSTATE, violatedConstraint, type Queryable, type QueryResult, type SqlParam } from './database.js';
import { wakeSql } from './wake.js';
import { advanceWatermark, checkPosition, movedColumns, movedFromRow, watermarkMove, watermarkNotMoved, type Watermark, type WatermarkPosition } from './watermarks.js';
import { backfillBatchClosed, recordBatchOutputs } from './backfills.js';
import { SignalsRepo, type Signal } from './signals.js';
import { CONSUMER_COLUMNS, parseConsumerRow, type Consumer } from './consumers.js';
import { readArchives, triggerDedupKey } from './batch-archive.js';

export type BatchState = 'open' | 'committed' | 'aborted' | 'expired';

/** Limits a prepare was asked for (they may split a snapshot's files across batches). */
export interface BatchLimits {
  maxFiles?: number;
  maxBytes?: bigint;
  maxRecords?: bigint;
}

/** The files of one table in a batch, in their JSON form (src/capture/file-json.ts). */
export interface BatchFiles {
  added: FileJson[];
  removed: FileJson[];
}

export interface IcdcSnapshotRef {
  /** e.g. icdc.consumer__table */
  table: string;
  snapshotId: bigint;
  metadataLocation: string;
}

/** A `mode: rows` batch's changelog table snapshot (issue 17). */
export interface RowChangelogRef {
  /** e.g. icdc.consumer__table__changelog */
  table: string;
  snapshotId: bigint;
  metadataLocation: string;
  /** Rows in the snapshot. */
  recordCount: bigint;
}

export interface BatchTableInput {
  sourceTable: string;
  /** The pinned range (from exclusive, to inclusive]; from null = from the first snapshot. */
  fromSnapshotId: bigint | null;
  fromSequenceNumber: bigint | null;
  toSnapshotId: bigint;
  toSequenceNumber: bigint;
  files: BatchFiles;
  /** Range parameters and changed partitions (JSON, as in ChangesJson). */
  ranges?: Record<string, unknown>;
  icdc?: IcdcSnapshotRef | null;
  rowChangelog?: RowChangelogRef | null;
  /** The watermark version the batch was prepared on: commit compares-and-sets against it. */
  baseWatermarkVersion: bigint;
  /** Where commit moves the watermark. */
  next: WatermarkPosition;
}

export interface BatchTable extends Required<Omit<BatchTableInput, 'icdc' | 'rowChangelog'>> {
  icdc: IcdcSnapshotRef | null;
  rowChangelog: RowChangelogRef | null;
  /**
   * False when the file list was not read (listings read it only when asked for): `files` is
   * then empty and says nothing. Counts, ranges and the ICDC snapshot are always there.
   */
  filesLoaded: boolean;
  /** When retention dropped the file list of this closed batch (`files` is then empty), or null. */
  filesPrunedAt: Date | null;
  /** Added plus removed files, their bytes and records. */
  fileCount: number;
  byteCount: bigint;
  recordCount: bigint;
}

export interface Batch {
  id: bigint;
  consumer: string;
  instanceId: string;
  state: BatchState;
  stateReason: string | null;
  limits: BatchLimits;
  leaseExpiresAt: Date;
  claimedBy: string | null;
  claimExpiresAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
  closedAt: Date | null;
  tables: BatchTable[];
  /** A chunk of a backfill (its own batch series: committing it never moves the watermark), or null. */
  backfill: string | null;
  backfillChunk: number | null;
}

export interface BatchInput {
  /** Default: a new random 63-bit id. */
  id?: bigint;
  consumer: string;
  instanceId: string;
  leaseSeconds: number;
  limits?: BatchLimits;
  tables: BatchTableInput[];
  /**
   * When set, refuse (BATCH_IN_FLIGHT) if this many open batches of the consumer already touch
   * one of the tables, and refuse (CONFLICT) if a watermark moved off baseWatermarkVersion: the
   * step protocol's guard against handing out the same changes twice.
   */
  maxInFlight?: number;
  /**
   * A batch a subscription fired: its trigger (outbox row, seq) is stored in the same
   * transaction, so a batch exists exactly when its delivery is owed.
   */
  trigger?: { subscription: string; seq: bigint; detail?: TriggerDetail };
  /** A backfill chunk's attempt: stored with the backfill's name and chunk index, no watermark checks. */
  backfill?: { name: string; chunk: number };
}

/**
 * What a trigger announces besides its batch (issue 18): the partition values it fires and the
 * signals it consumes. Stored with the trigger, in the batch's transaction; a value fires and a
 * signal is consumed at most once per subscription (CONFLICT otherwise: nothing is stored).
 */
export interface TriggerDetail {
  partition?: { field: string; values: { value: string; reason: 'complete' | 'quiet' }[] };
  signals?: bigint[];
}

export function triggerDetailToJson(d: TriggerDetail): Record<string, unknown> {
  return {
    ...(d.partition ? { partition: d.partition } : {}),
    ...(d.signals ? { signals: d.signals.map(String) } : {}),
  };
}

/** A signal output by a committed batch: recorded in the commit's transaction, once. */
export interface OutputSignal {
  name: string;
  params?: Record<string, string>;
}

export { triggerDedupKey };

const fileSchema = z.looseObject({
  file_path: z.string().min(1),
  content: z.enum(CONTENT_NAMES),
  record_count: int64String,
  file_size_in_bytes: int64String,
}) as unknown as z.ZodType<FileJson>;

const filesSchema = z.object({ added: z.array(fileSchema), removed: z.array(fileSchema) });

const limitsInput = z.object({
  maxFiles: z.number().int().positive().optional(),
  maxBytes: z.bigint().positive().optional(),
  maxRecords: z.bigint().positive().optional(),
}).strict();

/** Batch limits as stored (JSONB, snake_case, 64-bit values as strings). */
export const limitsJson = z.object({
  max_files: z.number().int().positive().optional(),
  max_bytes: int64FromJson.optional(),
  max_records: int64FromJson.optional(),
}).transform((j): BatchLimits => ({
  ...(j.max_files !== undefined ? { maxFiles: j.max_files } : {}),
  ...(j.max_bytes !== undefined ? { maxBytes: j.max_bytes } : {}),
  ...(j.max_records !== undefined ? { maxRecords: j.max_records } : {}),
}));

export function limitsToJson(l: BatchLimits): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (l.maxFiles !== undefined) out.max_files = l.maxFiles;
  if (l.maxBytes !== undefined) out.max_bytes = int64ToJson(l.maxBytes);
  if (l.maxRecords !== undefined) out.max_records = int64ToJson(l.maxRecords);
  return out;
}

const icdcSchema = z.object({ table: z.string().min(1), snapshotId: z.bigint(), metadataLocation: z.string().min(1) });

const tableInputSchema = z.object({
  sourceTable: z.string().min(1),
  fromSnapshotId: z.bigint().nullable(),
  fromSequenceNumber: z.bigint().nullable(),
  toSnapshotId: z.bigint(),
  toSequenceNumber: z.bigint(),
  files: filesSchema,
  ranges: z.record(z.string(), z.unknown()).default({}),
  icdc: icdcSchema.nullish().transform((v) => v ?? null),
  rowChangelog: z.object({ table: z.string().min(1), snapshotId: z.bigint(), metadataLocation: z.string().min(1), recordCount: z.bigint() }).nullish().transform((v) => v ?? null),
  baseWatermarkVersion: z.bigint(),
  next: z.custom<WatermarkPosition>((v) => typeof v === 'object' && v !== null),
});

const inputSchema = z.object({
  id: z.bigint().positive().optional(),
  consumer: z.string().min(1),
  instanceId: z.string().min(1).max(500),
  leaseSeconds: z.number().int().positive(),
  limits: limitsInput.default({}),
  tables: z.array(tableInputSchema).min(1),
}).superRefine((b, ctx) => {
  const seen = new Set<string>();
  for (const t of b.tables) {
    if (seen.has(t.sourceTable)) ctx.addIssue({ code: 'custom', message: `source table ${t.sourceTable} twice`, path: ['tables'] });
    seen.add(t.sourceTable);
  }
});

const batchRowSchema = z.object({
  id: z.bigint(),
  consumer: z.string(),
  instance_id: z.string(),
  state: z.enum(['open', 'committed', 'aborted', 'expired']),
  state_reason: z.string().nullable(),
  limits: limitsJson,
  lease_expires_at: z.date(),
  claimed_by: z.string().nullable(),
  claim_expires_at: z.date().nullable(),
  created_at: z.date(),
  updated_at: z.date(),
  closed_at: z.date().nullable(),
  backfill: z.string().nullable(),
  backfill_chunk: z.number().int().nullable(),
});

const tableRowSchema = z.object({
  batch_id: z.bigint(),
  source_table: z.string(),
  from_snapshot_id: z.bigint().nullable(),
  from_sequence_number: z.bigint().nullable(),
  to_snapshot_id: z.bigint(),
  to_sequence_number: z.bigint(),
  files: filesSchema,
  file_count: z.number().int(),
  byte_count: z.bigint(),
  record_count: z.bigint(),
  ranges: z.record(z.string(), z.unknown()),
  icdc_table: z.string().nullable(),
  icdc_snapshot_id: z.bigint().nullable(),
  icdc_metadata_location: z.string().nullable(),
  // Stored as JSON with 64-bit values as decimal strings.
  row_changelog: z.object({ table: z.string(), snapshot_id: z.string().regex(/^\d+$/), metadata_location: z.string(), record_count: z.string().regex(/^\d+$/) }).nullable(),
  base_watermark_version: z.bigint(),
  next_snapshot_id: z.bigint().nullable(),
  next_sequence_number: z.bigint().nullable(),
  next_partial_snapshot_id: z.bigint().nullable(),
  next_partial_sequence_number: z.bigint().nullable(),
  next_processed_files: z.array(z.string()),
  files_loaded: z.boolean(),
  files_pruned_at: z.date().nullable(),
}).transform((r): BatchTable & { batchId: bigint } => ({
  batchId: r.batch_id,
  sourceTable: r.source_table,
  fromSnapshotId: r.from_snapshot_id,
  fromSequenceNumber: r.from_sequence_number,
  toSnapshotId: r.to_snapshot_id,
  toSequenceNumber: r.to_sequence_number,
  files: r.files,
  filesLoaded: r.files_loaded,
  filesPrunedAt: r.files_pruned_at,
  fileCount: r.file_count,
  byteCount: r.byte_count,
  recordCount: r.record_count,
  ranges: r.ranges,
  icdc: r.icdc_table !== null && r.icdc_snapshot_id !== null && r.icdc_metadata_location !== null
    ? { table: r.icdc_table, snapshotId: r.icdc_snapshot_id, metadataLocation: r.icdc_metadata_location }
    : null,
  rowChangelog: r.row_changelog === null ? null : {
    table: r.row_changelog.table, snapshotId: BigInt(r.row_changelog.snapshot_id),
    metadataLocation: r.row_changelog.metadata_location, recordCount: BigInt(r.row_changelog.record_count),
  },
  baseWatermarkVersion: r.base_watermark_version,
  next: {
    snapshotId: r.next_snapshot_id,
    sequenceNumber: r.next_sequence_number,
    partialSnapshotId: r.next_partial_snapshot_id,
    partialSequenceNumber: r.next_partial_sequence_number,
    processedFiles: r.next_processed_files,
  },
}));

const BATCH_COLUMNS = `id, consumer, instance_id, state, state_reason, limits, lease_expires_at, claimed_by, claim_expires_at,
  created_at, updated_at, closed_at, backfill, backfill_chunk`;
const TABLE_COLUMNS = `batch_id, source_table, from_snapshot_id, from_sequence_number, to_snapshot_id, to_sequence_number, files,
  file_count, byte_count, record_count, ranges, icdc_table, icdc_snapshot_id, icdc_metadata_location, row_changelog, base_watermark_version,
  next_snapshot_id, next_sequence_number, next_partial_snapshot_id, next_partial_sequence_number, next_processed_files,
  true AS files_loaded, files_pruned_at`;
/** The prefix of the moved watermark's columns in a commit's single statement. */
const MOVED_PREFIX = 'moved__';
/** The same without the file lists (the bulk of a batch's row): for listings and commits. */
const TABLE_COLUMNS_NO_FILES = TABLE_COLUMNS
  .replace(' files,', ` '{"added":[],"removed":[]}'::JSONB AS files,`)
  .replace('true AS files_loaded', 'false AS files_loaded');

function notFound(id: bigint): IpsError {
  return new IpsError('NOT_FOUND', `batch ${id} does not exist (closed batches are deleted by retention after batch_days; see docs/retention.md)`,
    { details: { batch_id: id.toString() } });
}

function notOpen(b: { id: bigint; state: BatchState }, action: string): IpsError {
  return new IpsError('BATCH_NOT_OPEN', `batch ${b.id} is ${b.state}: it cannot be ${action}`, { details: { batch_id: b.id.toString(), state: b.state } });
}

export interface BatchCommitResult {
  batch: Batch;
  watermarks: Watermark[];
  alreadyCommitted: boolean;
  signals: Signal[];
  /** The consumer has an enabled subscription, made due by this commit: a trigger loop may look now. */
  woke: boolean;
}

export interface CreateBatchResult {
  batch: Batch;
  /** False when a batch with this (consumer, instance_id) existed: it is returned unchanged. */
  created: boolean;
}

/**
 * Refuses a batch when maxInFlight batches of the consumer are open on its tables (another
 * would hand out the same changes again), or when a watermark moved after the batch was
 * planned on it. Returns the id of the batch this instance already stored, if any (checked first).
 */
type InFlightRow = { kind: 'batch' | 'watermark'; id: bigint | null; instance_id: string | null; source_table: string | null; busy: boolean; version: bigint | null };

/**
 * What checkInFlight judges, in one statement: the open batches, the batch of this instance
 * whatever its state (a retry), and the versions of the watermarks the batch is planned on.
 */
function readInFlight(tx: Queryable, consumer: string, instanceId: string, tables: { sourceTable: string }[]): Promise<QueryResult<InFlightRow>> {
  return tx.query<InFlightRow>(
    `SELECT 'batch' AS kind, b.id, b.instance_id, t.source_table,
            (b.state = 'open' AND b.backfill IS NULL AND b.lease_expires_at >= now()) AS busy, NULL::INT8 AS version, b.created_at
       FROM batches b LEFT JOIN batch_tables t ON t.batch_id = b.id
      WHERE b.consumer = $1 AND ((b.state = 'open' AND b.backfill IS NULL AND b.lease_expires_at >= now()) OR b.instance_id = $2)
     UNION ALL
     SELECT 'watermark', NULL, NULL, w.source_table, false, w.version, NULL
       FROM watermarks w WHERE w.consumer = $1 AND w.source_table IN (SELECT jsonb_array_elements_text($3::JSONB))
     ORDER BY created_at, id`, [consumer, instanceId, jsonParam(tables.map((t) => t.sourceTable))]);
}

function checkInFlight(all: QueryResult<InFlightRow>, consumer: string, instanceId: string, tables: { sourceTable: string; baseWatermarkVersion: bigint }[], maxInFlight: number): bigint | null {
  const names = tables.map((t) => t.sourceTable);
  const rows = all.rows.filter((r) => r.kind === 'batch');
  const versions = new Map(all.rows.filter((r) => r.kind === 'watermark').map((r) => [r.source_table!, r.version!] as const));
  const same = rows.find((r) => r.instance_id === instanceId);
  if (same) return same.id!;
  const open = { rows: rows.filter((r) => r.busy && r.source_table !== null) as { id: bigint; instance_id: string; source_table: string }[] };
  const busyRows = open.rows.filter((r) => names.includes(r.source_table));
  const busy = busyRows[0];
  if (busy && new Set(busyRows.map((r) => r.id)).size >= maxInFlight) {
    throw new IpsError('BATCH_IN_FLIGHT',
      `consumer "${consumer}" has batch ${busy.id} open on "${busy.source_table}" (instance ${busy.instance_id}); commit or abort it first`,
      { details: { consumer, table: busy.source_table, batch_id: busy.id.toString(), instance_id: busy.instance_id } });
  }
  for (const t of tables) {
    const version = versions.get(t.sourceTable);
    if (version === undefined) throw new IpsError('NOT_FOUND', `consumer "${consumer}" does not subscribe to "${t.sourceTable}"`);
    // With batches in flight, a new one chains after them: each commit moves the version by one.
    const ahead = BigInt(new Set(busyRows.filter((r) => r.source_table === t.sourceTable).map((r) => r.id)).size);
    if (version + ahead !== t.baseWatermarkVersion) {
      throw new IpsError('CONFLICT',
        `the watermark of consumer "${consumer}" on "${t.sourceTable}" moved while the batch was prepared (planned on version ${t.baseWatermarkVersion}, it is at ${version} with ${ahead} batch(es) in flight); prepare again`,
        { details: { consumer, source_table: t.sourceTable, expected_version: t.baseWatermarkVersion.toString(), actual_version: version.toString() } });
    }
  }
  return null;
}

/**
 * Batches chained after a closed one (prepared on top of it, with more than one in flight)
 * could never commit: their base moves only through it. They are aborted too, and their
 * changes go to the next prepare with the closed batch's.
 */
async function closeLaterBatches(q: Queryable, closed: Batch, reason: string): Promise<void> {
  if (closed.backfill !== null) return; // a backfill's chunks do not chain on the watermark
  const ids = new Set<bigint>();
  for (const t of closed.tables) {
    // Chained after it: planned on a later version of the same watermark.
    const later = await q.query<{ id: bigint }>(
      `SELECT b.id FROM batches b JOIN batch_tables t ON t.batch_id = b.id
        WHERE b.consumer = $1 AND b.state = 'open' AND b.backfill IS NULL AND t.source_table = $2 AND t.base_watermark_version > $3`,
      [closed.consumer, t.sourceTable, t.baseWatermarkVersion]);
    for (const r of later.rows) ids.add(r.id);
  }
  if (ids.size === 0) return;
  await q.query(
    `UPDATE batches SET state = 'aborted', state_reason = $2, closed_at = now(), updated_at = now(), claimed_by = NULL, claim_expires_at = NULL
      WHERE id = ANY($1::INT8[]) AND state = 'open'`, [int8Array([...ids]), reason]);
  await cancelTriggers(q, [...ids]);
}

/** A closed batch's undelivered trigger is not sent: its changes go to the next batch. */
async function cancelTriggers(q: Queryable, batchIds: bigint[]): Promise<void> {
  const res = await q.query<{ id: bigint }>(
    `UPDATE outbox SET state = 'cancelled', claimed_by = NULL, claim_expires_at = NULL
      WHERE batch_id = ANY($1::INT8[]) AND state IN ('pending', 'dead') RETURNING id`, [int8Array(batchIds)]);
  if (res.rows.length === 0) return;
  // No run got these triggers: their partition values may fire again and their signals serve the next firing.
  const ids = int8Array(res.rows.map((r) => r.id));
  await q.query('DELETE FROM partition_firings WHERE outbox_id = ANY($1::INT8[])', [ids]);
  await q.query('DELETE FROM signal_consumptions WHERE outbox_id = ANY($1::INT8[])', [ids]);
}

/**
 * Stores a subscription's trigger (outbox row) in the caller's transaction: the subscription's
 * fire sequence moves, and the partition values it fires and the signals it consumes are taken,
 * each at most once per subscription (CONFLICT otherwise, and the transaction stores nothing).
 * `batchId` null: a trigger fired without changes (signals alone, or a partition value that became
 * ready after its data went out with another batch).
 */
export async function storeTrigger(tx: Queryable, t: { subscription: string; seq: bigint; detail?: TriggerDetail }, batchId: bigint | null): Promise<bigint> {
  const fired = await tx.query(
    `UPDATE subscriptions SET fire_seq = GREATEST(fire_seq, $2::INT8), last_fired_at = now(), pending_since = NULL, updated_at = now()
      WHERE name = $1 RETURNING name`, [t.subscription, t.seq]);
  if (fired.rowCount === 0) throw new IpsError('NOT_FOUND', `subscription "${t.subscription}" does not exist`);
  const outboxId = newId();
  // A batchless trigger's dedup key names the trigger itself (random 63-bit id), never a seq a recreated subscription could repeat.
  const dedupKey = batchId !== null ? triggerDedupKey(t.subscription, batchId) : `ips:${t.subscription}:t${outboxId}`;
  await tx.query(
    'INSERT INTO outbox (id, subscription, batch_id, seq, dedup_key, detail) VALUES ($1, $2, $3, $4, $5, $6::JSONB)',
    [outboxId, t.subscription, batchId, t.seq, dedupKey, jsonParam(triggerDetailToJson(t.detail ?? {}))]);
  for (const p of t.detail?.partition?.values ?? []) {
    const r = await tx.query(
      `INSERT INTO partition_firings (subscription, value, outbox_id, reason) VALUES ($1, $2, $3, $4)
        ON CONFLICT (subscription, value) DO NOTHING`, [t.subscription, p.value, outboxId, p.reason]);
    if (r.rowCount === 0) throw new IpsError('CONFLICT', `subscription "${t.subscription}" already fired partition value ${p.value}; it is checked again`);
  }
  for (const signalId of t.detail?.signals ?? []) {
    const r = await tx.query(
      `INSERT INTO signal_consumptions (signal_id, subscription, outbox_id) VALUES ($1, $2, $3)
        ON CONFLICT (signal_id, subscription) DO NOTHING`, [signalId, t.subscription, outboxId]);
    if (r.rowCount === 0) throw new IpsError('CONFLICT', `signal ${signalId} was already consumed by subscription "${t.subscription}"; it is checked again`);
  }
  return outboxId;
}

/** A batch's owner and state, without its tables (BatchesRepo.head). */
export interface BatchHead {
  id: bigint;
  consumer: string;
  state: BatchState;
  backfill: string | null;
  /** The consumer declares output tables (consumer_outputs). */
  hasOutputs: boolean;
}

/** Tables by batch id from rows holding TABLE_COLUMNS (and maybe more), in their order. */
function tablesFromRows(rows: readonly unknown[]): Map<bigint, BatchTable[]> {
  const tables = new Map<bigint, BatchTable[]>();
  for (const row of rows) {
    const { batchId, ...table } = parseRow(tableRowSchema, row, 'batch_tables');
    let list = tables.get(batchId);
    if (!list) tables.set(batchId, (list = []));
    list.push(table);
  }
  return tables;
}

/** A batch from its row (BATCH_COLUMNS) and the tables read for it. */
function assembleBatch(row: unknown, tables: Map<bigint, BatchTable[]>): Batch {
  const r = parseRow(batchRowSchema, row, 'batches');
  return {
    id: r.id, consumer: r.consumer, instanceId: r.instance_id, state: r.state, stateReason: r.state_reason, limits: r.limits,
    leaseExpiresAt: r.lease_expires_at, claimedBy: r.claimed_by, claimExpiresAt: r.claim_expires_at,
    createdAt: r.created_at, updatedAt: r.updated_at, closedAt: r.closed_at, tables: tables.get(r.id) ?? [],
    backfill: r.backfill, backfillChunk: r.backfill_chunk,
  };
}

export class BatchesRepo {
  constructor(private readonly q: Queryable) {}

  /**
   * Stores a prepared batch with its tables in one transaction. Idempotent on
   * (consumer, instance_id): when that batch exists (a retried step, or a concurrent prepare
   * that committed first), it is returned as it is and nothing is written.
   */
  create(input: BatchInput): Promise<CreateBatchResult> {
    const v = parseInput(inputSchema, input, 'batch');
    checkName('consumer', v.consumer);
    const tables = v.tables.map((t) => {
      const next = checkPosition(t.next);
      const all = [...t.files.added, ...t.files.removed];
      return {
        ...t, next,
        fileCount: all.length,
        byteCount: all.reduce((s, f) => s + BigInt(f.file_size_in_bytes), 0n),
        recordCount: all.reduce((s, f) => s + BigInt(f.record_count), 0n),
      };
    });
    const id = v.id ?? newId();
    // The batch and its first table in one statement (the table row only when the batch row
    // was inserted); further tables (a batch over several) one statement each.
    const tableParams = (t: (typeof tables)[number]): SqlParam[] => [t.sourceTable, t.fromSnapshotId, t.fromSequenceNumber, t.toSnapshotId, t.toSequenceNumber,
      jsonParam(t.files), t.fileCount, t.byteCount, t.recordCount, jsonParam(t.ranges),
      t.icdc?.table ?? null, t.icdc?.snapshotId ?? null, t.icdc?.metadataLocation ?? null,
      t.baseWatermarkVersion, t.next.snapshotId, t.next.sequenceNumber, t.next.partialSnapshotId, t.next.partialSequenceNumber,
      jsonParam(t.next.processedFiles),
      t.rowChangelog ? jsonParam({ table: t.rowChangelog.table, snapshot_id: t.rowChangelog.snapshotId.toString(), metadata_location: t.rowChangelog.metadataLocation, record_count: t.rowChangelog.recordCount.toString() }) : null];
    const TABLE_INSERT_COLUMNS = `batch_id, source_table, from_snapshot_id, from_sequence_number, to_snapshot_id, to_sequence_number,
             files, file_count, byte_count, record_count, ranges, icdc_table, icdc_snapshot_id, icdc_metadata_location,
             base_watermark_version, next_snapshot_id, next_sequence_number, next_partial_snapshot_id, next_partial_sequence_number,
             next_processed_files, row_changelog`;
    // $n.. typed: in a SELECT list (below) a parameter has no target column to take its type from.
    const tableValues = (n: number): string => [
      'TEXT', 'INT8', 'INT8', 'INT8', 'INT8', 'JSONB', 'INT4', 'INT8', 'INT8', 'JSONB', 'TEXT', 'INT8', 'TEXT',
      'INT8', 'INT8', 'INT8', 'INT8', 'INT8', 'JSONB', 'JSONB',
    ].map((type, i) => `$${n + i}::${type}`).join(', ');
    const refused = (e: unknown, sourceTable: string): never => {
      if (sqlState(e) === SQLSTATE.FOREIGN_KEY_VIOLATION) {
        if (violatedConstraint(e)?.startsWith('batch_tables_')) throw new IpsError('NOT_FOUND', `source table "${sourceTable}" is not registered`, { cause: e });
        throw new IpsError('NOT_FOUND', `consumer "${v.consumer}" does not exist`, { cause: e });
      }
      throw e;
    };
    const [first, ...rest] = tables;
    if (first === undefined) throw new IpsError('INVALID_ARGUMENT', 'a batch needs at least one table');
    const insertFirst = (tx: Queryable): Promise<QueryResult<Record<string, unknown>>> => tx.query(
      `WITH b AS (
         INSERT INTO batches (id, consumer, instance_id, limits, lease_expires_at, backfill, backfill_chunk)
         VALUES ($1, $2, $3, $4::JSONB, now() + $5::INT8 * INTERVAL '1 second', $6, $7)
         ON CONFLICT (consumer, instance_id) DO NOTHING
         RETURNING ${BATCH_COLUMNS}),
       t AS (
         INSERT INTO batch_tables (${TABLE_INSERT_COLUMNS})
         SELECT b.id, ${tableValues(8)} FROM b
         RETURNING ${TABLE_COLUMNS_NO_FILES})
       SELECT b.*, t.* FROM b LEFT JOIN t ON true`,
      [id, v.consumer, v.instanceId, jsonParam(limitsToJson(v.limits)), v.leaseSeconds, input.backfill?.name ?? null, input.backfill?.chunk ?? null,
        ...tableParams(first)]);
    const checked = input.maxInFlight !== undefined && input.backfill === undefined;
    return this.q.withTransaction(async (tx) => {
      const repo = new BatchesRepo(tx);
      // Prepares of one consumer queue on its row, so that the checks below see every batch
      // stored before and no two batches of one consumer hand out the same changes. A live
      // prepare sends the lock, the check and the insert at once, answered in one round trip:
      // the server runs them in order, each on a snapshot taken when it starts (after the lock
      // is held), as if each had been awaited; when the lock or the check refuses, the insert's
      // row goes with the transaction's rollback, and ON CONFLICT leaves a stored batch of this
      // instance as it is.
      const sent = await Promise.allSettled([
        tx.query('SELECT name FROM consumers WHERE name = $1 FOR UPDATE', [v.consumer]),
        ...(checked ? [readInFlight(tx, v.consumer, v.instanceId, tables), insertFirst(tx)] : []),
      ]);
      const settled = <T>(r: PromiseSettledResult<T> | undefined): T => {
        if (r === undefined) throw new IpsError('INTERNAL', 'a statement of the batch store was not sent');
        if (r.status === 'rejected') throw r.reason;
        return r.value;
      };
      if (settled(sent[0]).rowCount === 0) throw new IpsError('NOT_FOUND', `consumer "${v.consumer}" does not exist`);
      let res: QueryResult<Record<string, unknown>> | undefined;
      if (checked) {
        // The batch of this instance, if stored, comes back from the same statement as the open ones.
        const same = checkInFlight(settled(sent[1]) as QueryResult<InFlightRow>, v.consumer, v.instanceId, tables, input.maxInFlight!);
        if (same !== null) return { batch: (await repo.load([same]))[0]!, created: false };
        try {
          res = settled(sent[2]) as QueryResult<Record<string, unknown>>;
        } catch (e) {
          refused(e, first.sourceTable);
        }
      } else {
        const same = await repo.findByInstance(v.consumer, v.instanceId);
        if (same) return { batch: same, created: false };
        try {
          res = await insertFirst(tx);
        } catch (e) {
          refused(e, first.sourceTable);
        }
      }
      const row = res?.rows[0];
      if (row === undefined) {
        const existing = await repo.findByInstance(v.consumer, v.instanceId);
        if (!existing) {
          // The id itself collided (2^-63 odds) rather than the instance: report, never overwrite.
          throw new IpsError('CONFLICT', `batch id ${id} is taken; retry the prepare`);
        }
        return { batch: existing, created: false };
      }
      // The file lists (the bulk of a batch) are not sent back: the stored table holds the
      // validated lists it was given.
      const stored: BatchTable[] = [];
      const storedTable = (r: unknown, t: (typeof tables)[number]): BatchTable => {
        const { batchId: _, ...table } = parseRow(tableRowSchema, r, 'batch_tables');
        return { ...table, files: t.files, filesLoaded: true };
      };
      stored.push(storedTable(row, first));
      for (const t of rest) {
        try {
          const res = await tx.query(
            `INSERT INTO batch_tables (${TABLE_INSERT_COLUMNS}) VALUES ($1, ${tableValues(2)}) RETURNING ${TABLE_COLUMNS_NO_FILES}`,
            [id, ...tableParams(t)]);
          stored.push(storedTable(res.rows[0], t));
        } catch (e) {
          refused(e, t.sourceTable);
        }
      }
      if (input.trigger) await storeTrigger(tx, input.trigger, id);
      // The batch as stored, from what the INSERTs returned (in load()'s table order): no read back.
      stored.sort((a, b) => (a.sourceTable < b.sourceTable ? -1 : a.sourceTable > b.sourceTable ? 1 : 0));
      return { batch: assembleBatch(row, new Map([[id, stored]])), created: true };
    });
  }

  /** Batches by id, in the order given (missing ids left out); `files: false` leaves the file lists unread. */
  async load(ids: readonly bigint[], options: { files?: boolean } = {}): Promise<Batch[]> {
    if (ids.length === 0) return [];
    const arr = int8Array(ids);
    const b = await this.q.query(`SELECT ${BATCH_COLUMNS} FROM batches WHERE id = ANY($1::INT8[])`, [arr]);
    const tables = await this.tablesOf(ids, options);
    const byId = new Map<bigint, Batch>();
    for (const row of b.rows) {
      const batch = assembleBatch(row, tables);
      byId.set(batch.id, batch);
    }
    return ids.map((id) => byId.get(id)).filter((x): x is Batch => x !== undefined);
  }

  /** The tables of these batches, by batch id. */
  private async tablesOf(ids: readonly bigint[], options: { files?: boolean } = {}): Promise<Map<bigint, BatchTable[]>> {
    const t = await this.q.query(`SELECT ${options.files === false ? TABLE_COLUMNS_NO_FILES : TABLE_COLUMNS} FROM batch_tables WHERE batch_id = ANY($1::INT8[]) ORDER BY batch_id, source_table`, [int8Array(ids)]);
    const tables = new Map<bigint, BatchTable[]>();
    const add = (row: unknown) => {
      const { batchId, ...table } = parseRow(tableRowSchema, row, 'batch_tables');
      let list = tables.get(batchId);
      if (!list) tables.set(batchId, (list = []));
      list.push(table);
    };
    for (const row of t.rows) add(row);
    // A batch without table rows is an archived one (or none): its summaries are in its archive.
    const missing = ids.filter((id) => !tables.has(id));
    if (missing.length > 0) {
      for (const a of await readArchives(this.q, 'id = ANY($1::INT8[])', [int8Array(missing)])) {
        for (const row of a.rows.tables) add({ ...row, files: { added: [], removed: [] }, next_processed_files: [], files_loaded: options.files !== false });
      }
    }
    return tables;
  }

  /**
   * What a commit or abort checks before it acts, in one statement: the batch's consumer (whose
   * token may act on it), its state, and whether the consumer declares output tables (a commit
   * then resolves its outputs). Undefined when there is no such batch.
   */
  async head(id: bigint): Promise<BatchHead | undefined> {
    const res = await this.q.query<{ consumer: string; state: BatchState; backfill: string | null; has_outputs: boolean }>(
      `SELECT b.consumer, b.state, b.backfill, EXISTS (SELECT 1 FROM consumer_outputs o WHERE o.consumer = b.consumer) AS has_outputs
         FROM batches b WHERE b.id = $1`, [id]);
    const r = res.rows[0];
    return r === undefined ? undefined : { id, consumer: r.consumer, state: r.state, backfill: r.backfill, hasOutputs: r.has_outputs };
  }

  /**
   * What a prepare looks at first, in one statement: the batch this (consumer, instance) already
   * has (any state: a retried step), and the consumer's open batches, each with whether its
   * lease ran out (database clock).
   */
  /**
   * What a prepare reads first, in one statement: the consumer (undefined when there is none)
   * and stepView's answer (the batch of this instance, the consumer's open batches).
   */
  async stepStart(consumer: string, instanceId: string): Promise<{ consumer: Consumer | undefined; view: { instance: bigint | null; open: { id: bigint; due: boolean }[] } }> {
    const cols = CONSUMER_COLUMNS.split(',').map((c) => `c.${c.trim()}`).join(', ');
    const res = await this.q.query<{ b_id: bigint | null; b_instance_id: string | null; b_state: BatchState | null; b_due: boolean | null }>(
      `SELECT ${cols}, b.id AS b_id, b.instance_id AS b_instance_id, b.state AS b_state, b.lease_expires_at < now() AS b_due
         FROM consumers c LEFT JOIN batches b ON b.consumer = c.name AND (b.state = 'open' OR b.instance_id = $2)
        WHERE c.name = $1 ORDER BY b.created_at, b.id`, [consumer, instanceId]);
    const first = res.rows[0];
    if (first === undefined) return { consumer: undefined, view: { instance: null, open: [] } };
    const rows = res.rows.filter((r) => r.b_id !== null);
    return {
      consumer: parseConsumerRow(first),
      view: {
        instance: rows.find((r) => r.b_instance_id === instanceId)?.b_id ?? null,
        open: rows.filter((r) => r.b_state === 'open').map((r) => ({ id: r.b_id!, due: r.b_due === true })),
      },
    };
  }

  async stepView(consumer: string, instanceId: string): Promise<{ instance: bigint | null; open: { id: bigint; due: boolean }[] }> {
    const res = await this.q.query<{ id: bigint; instance_id: string; state: BatchState; due: boolean }>(
      `SELECT id, instance_id, state, lease_expires_at < now() AS due FROM batches
        WHERE consumer = $1 AND (state = 'open' OR instance_id = $2) ORDER BY created_at, id`, [consumer, instanceId]);
    return {
      instance: res.rows.find((r) => r.instance_id === instanceId)?.id ?? null,
      open: res.rows.filter((r) => r.state === 'open').map((r) => ({ id: r.id, due: r.due })),
    };
  }

  async requireHead(id: bigint): Promise<BatchHead> {
    const h = await this.head(id);
    if (!h) throw notFound(id);
    return h;
  }

  async get(id: bigint, options: { files?: boolean } = {}): Promise<Batch | undefined> {
    return (await this.load([id], options))[0];
  }

  /** The batch (NOT_FOUND otherwise); `files: false` leaves its file lists unread. */
  async require(id: bigint, options: { files?: boolean } = {}): Promise<Batch> {
    const b = await this.get(id, options);
    if (!b) throw notFound(id);
    return b;
  }

  async findByInstance(consumer: string, instanceId: string): Promise<Batch | undefined> {
    const res = await this.q.query<{ id: bigint }>('SELECT id FROM batches WHERE consumer = $1 AND instance_id = $2', [consumer, instanceId]);
    return res.rows[0] === undefined ? undefined : this.get(res.rows[0].id);
  }

  /** Batches, oldest first (or the newest `limit`, newest first); filtered by consumer and/or state; `files: false` leaves the file lists unread. */
  async list(filter: { consumer?: string; state?: BatchState; limit?: number; newestFirst?: boolean; files?: boolean } = {}): Promise<Batch[]> {
    const where: string[] = [];
    const params: SqlParam[] = [];
    if (filter.consumer !== undefined) where.push(`consumer = $${params.push(filter.consumer)}`);
    if (filter.state !== undefined) where.push(`state = $${params.push(filter.state)}`);
    const limit = filter.limit !== undefined ? ` LIMIT $${params.push(filter.limit)}` : '';
    const res = await this.q.query<{ id: bigint }>(
      `SELECT id FROM batches${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY ${filter.newestFirst ? 'created_at DESC, id DESC' : 'created_at, id'}${limit}`, params);
    return this.load(res.rows.map((r) => r.id), { files: filter.files !== false });
  }

  /**
   * When each consumer (or one) last committed a batch of its own series (backfill chunks move no
   * watermark): its newest committed batch's close, found through the consumer's batch index
   * without reading its older batches (a consumer's batches commit in the order they were made:
   * each is planned on the watermark the one before it moved). Consumers that never committed
   * are absent.
   */
  async lastCommits(filter: { consumer?: string } = {}): Promise<Map<string, Date>> {
    const params: SqlParam[] = [];
    const which = filter.consumer !== undefined ? ` WHERE c.name = $${params.push(filter.consumer)}` : '';
    const res = await this.q.query<{ consumer: string; closed_at: Date }>(
      `SELECT c.name AS consumer, b.closed_at FROM consumers c CROSS JOIN LATERAL (
          SELECT closed_at FROM batches WHERE consumer = c.name AND state = 'committed' AND backfill IS NULL
           ORDER BY created_at DESC, id DESC LIMIT 1) b${which}`, params);
    return new Map(res.rows.filter((r) => r.closed_at !== null).map((r) => [r.consumer, r.closed_at]));
  }

  /** Records the ICDC snapshot written for one table of a batch. */
  async setIcdc(batchId: bigint, sourceTable: string, icdc: IcdcSnapshotRef): Promise<void> {
    const v = parseInput(icdcSchema, icdc, 'ICDC snapshot');
    const res = await this.q.query(
      `UPDATE batch_tables SET icdc_table = $3, icdc_snapshot_id = $4, icdc_metadata_location = $5
        WHERE batch_id = $1 AND source_table = $2`,
      [batchId, sourceTable, v.table, v.snapshotId, v.metadataLocation]);
    if (res.rowCount === 0) throw new IpsError('NOT_FOUND', `batch ${batchId} has no table "${sourceTable}"`);
  }

  /** Pushes an open batch's lease to now + seconds; BATCH_NOT_OPEN otherwise. */
  async extendLease(id: bigint, seconds: number): Promise<Batch> {
    const res = await this.q.query(
      `UPDATE batches SET lease_expires_at = now() + $2::INT8 * INTERVAL '1 second', updated_at = now()
        WHERE id = $1 AND state = 'open' RETURNING id`, [id, seconds]);
    if (res.rowCount === 0) throw notOpen(await this.require(id), 'extended');
    return this.require(id);
  }

  /**
   * Starts an open batch's lease again, for its consumer's lease seconds (its run starts now: a
   * trigger was delivered). One statement; false when the batch is no longer open.
   */
  async restartLease(id: bigint): Promise<boolean> {
    const res = await this.q.query(
      `UPDATE batches b SET lease_expires_at = now() + c.lease_seconds * INTERVAL '1 second', updated_at = now()
         FROM consumers c WHERE b.id = $1 AND b.state = 'open' AND c.name = b.consumer RETURNING b.id`, [id]);
    return res.rowCount > 0;
  }

  /**
   * Closes an open batch as aborted or expired. Closing it again the same way is a no-op
   * (`changed` false); a batch closed another way (e.g. committed) is BATCH_NOT_OPEN.
   */
  close(id: bigint, state: 'aborted' | 'expired', reason: string | null = null): Promise<{ batch: Batch; changed: boolean }> {
    return this.q.withTransaction(async (tx) => {
      const repo = new BatchesRepo(tx);
      const res = await tx.query(
        `UPDATE batches SET state = $2, state_reason = $3, closed_at = now(), updated_at = now(), claimed_by = NULL, claim_expires_at = NULL
          WHERE id = $1 AND state = 'open' RETURNING id`, [id, state, reason]);
      const batch = await repo.require(id);
      if (res.rowCount === 1) {
        await cancelTriggers(tx, [id]);
        await closeLaterBatches(tx, batch, `an earlier batch (${id}) was ${state}`);
        await backfillBatchClosed(tx, batch, state, reason);
        await tx.query(wakeSql('consumer = $1'), [batch.consumer]);
        return { batch, changed: true };
      }
      if (batch.state === state) return { batch, changed: false };
      throw notOpen(batch, state);
    });
  }

  /** Marks every open batch whose lease ran out (database clock) as expired; returns their ids. */
  async expireDue(): Promise<bigint[]> {
    // Cheap check first: most calls find nothing due and need no transaction.
    const due = await this.q.query('SELECT 1 FROM batches WHERE state = \'open\' AND lease_expires_at < now() LIMIT 1');
    if (due.rowCount === 0) return [];
    // One transaction: a backfill chunk goes back to pending together with its batch's expiry.
    return this.q.withTransaction(async (tx) => {
      const res = await tx.query<{ id: bigint }>(
        `UPDATE batches SET state = 'expired', state_reason = 'lease expired', closed_at = now(), updated_at = now(),
                claimed_by = NULL, claim_expires_at = NULL
          WHERE state = 'open' AND lease_expires_at < now() RETURNING id`);
      const ids = res.rows.map((r) => r.id);
      if (ids.length > 0) {
        await cancelTriggers(tx, ids);
        for (const b of await new BatchesRepo(tx).load(ids)) {
          await closeLaterBatches(tx, b, `an earlier batch (${b.id}) expired`);
          await backfillBatchClosed(tx, b, 'expired', 'lease expired');
        }
      }
      return ids;
    });
  }

  /**
   * Commits a batch: moves the watermark of each of its tables from its base version to its
   * `next` position (compare-and-set, audit row with the batch id), then marks it committed,
   * all in one transaction. Committing a committed batch is a no-op (`alreadyCommitted`).
   * CONFLICT when a watermark moved since prepare (nothing is changed); BATCH_NOT_OPEN when
   * aborted or expired, also when its lease ran out and no sweep has marked it yet.
   */
  async commit(id: bigint, actor: string, outputs: Record<string, bigint> = {}, signals: OutputSignal[] = []): Promise<BatchCommitResult> {
    return (await this.commitChecked(id, actor, outputs, signals, null))!;
  }

  /**
   * commit() with a check of the locked batch's head (what head() reads) before anything is
   * changed, in the same transaction: a check that throws (the caller may not act on the batch)
   * leaves it as it was; one that answers false (the caller has work to do first, outside the
   * transaction) makes this answer null, nothing changed. A commit without a head() read first.
   */
  async commitIf(id: bigint, actor: string, signals: OutputSignal[], check: (head: BatchHead) => boolean): Promise<BatchCommitResult | null> {
    return this.commitChecked(id, actor, {}, signals, check);
  }

  private commitChecked(id: bigint, actor: string, outputs: Record<string, bigint>, signals: OutputSignal[], check: ((head: BatchHead) => boolean) | null): Promise<BatchCommitResult | null> {
    return this.q.withTransaction(async (tx) => {
      const repo = new BatchesRepo(tx);
      // The row, locked, with its lease checked on the database clock, and its tables: one
      // statement, a row per table (the batch's columns repeated; no column name is in both).
      // Not their file lists: a commit moves watermarks, and answers without them.
      const lock = await tx.query<{ state: BatchState; lease_expired: boolean; batch_id: bigint | null; has_outputs: boolean }>(
        `SELECT ${BATCH_COLUMNS}, lease_expires_at < now() AS lease_expired, ${TABLE_COLUMNS_NO_FILES},
                EXISTS (SELECT 1 FROM consumer_outputs o WHERE o.consumer = b.consumer) AS has_outputs
           FROM batches b LEFT JOIN batch_tables t ON t.batch_id = b.id
          WHERE b.id = $1 ORDER BY t.source_table FOR UPDATE OF b`, [id]);
      const row = lock.rows[0];
      if (!row) throw notFound(id);
      // No table rows: an archived batch (its tables are read from its archive).
      const tables = row.batch_id === null ? await repo.tablesOf([id], { files: false }) : tablesFromRows(lock.rows);
      const batch = assembleBatch(row, tables);
      if (check !== null && !check({ id, consumer: batch.consumer, state: row.state, backfill: batch.backfill, hasOutputs: row.has_outputs })) return null;
      if (row.state === 'committed') return { batch, watermarks: [], alreadyCommitted: true, signals: [], woke: false };
      if (row.state !== 'open') throw notOpen(batch, 'committed');
      if (row.lease_expired) {
        throw new IpsError('BATCH_NOT_OPEN', `batch ${id} lease expired at ${batch.leaseExpiresAt.toISOString()}: its changes go to the next prepare`,
          { details: { batch_id: id.toString(), state: 'expired' } });
      }
      const [only] = batch.tables;
      if (batch.backfill === null && batch.tables.length === 1 && only !== undefined && Object.keys(outputs).length === 0 && signals.length === 0) {
        // The common commit (one table, no outputs, no signals) in one statement: the watermark's
        // compare-and-set move with its audit row, the batch committed, the consumer's
        // subscriptions woken. When the watermark did not move, the error rolls all of it back.
        const move = watermarkMove(batch.consumer, only.sourceTable, only.baseWatermarkVersion, only.next, { actor, reason: 'commit', batchId: id });
        const res = await tx.query<Record<string, unknown> & { subscribed: boolean }>(
          `WITH ${move.ctes},
           done AS (
             UPDATE batches SET state = 'committed', closed_at = now(), updated_at = now(), claimed_by = NULL, claim_expires_at = NULL
              WHERE id = $10 RETURNING ${BATCH_COLUMNS}),
           wake AS (${wakeSql('consumer = $1')} RETURNING 1)
           SELECT done.*, ${movedColumns('m', MOVED_PREFIX)}, EXISTS (SELECT 1 FROM subscriptions WHERE consumer = $1 AND enabled) AS subscribed
             FROM done LEFT JOIN moved m ON true`, move.params);
        const out = res.rows[0];
        const moved = out === undefined ? undefined : movedFromRow(out, MOVED_PREFIX);
        if (moved === undefined) return watermarkNotMoved(tx, batch.consumer, only.sourceTable, only.baseWatermarkVersion);
        return { batch: assembleBatch(out, tables), watermarks: [moved], alreadyCommitted: false, signals: [], woke: out!.subscribed === true };
      }
      const watermarks: Watermark[] = [];
      // A backfill chunk is its own batch series: the consumer's watermark stays where it is.
      if (batch.backfill === null) for (const t of batch.tables) {
        watermarks.push(await advanceWatermark(tx, batch.consumer, t.sourceTable, t.baseWatermarkVersion, t.next,
          { actor, reason: 'commit', batchId: id }));
      }
      await recordBatchOutputs(tx, id, outputs);
      await backfillBatchClosed(tx, batch, 'committed', null, outputs);
      // Output signals: announced by this commit only (a replayed commit announces nothing).
      const announced: Signal[] = [];
      const signalsRepo = new SignalsRepo(tx);
      for (const sig of signals) {
        announced.push(await signalsRepo.record({ name: sig.name, params: sig.params ?? {}, sender: actor, consumer: batch.consumer, batchId: id }));
      }
      // In the same transaction: a replica dying right after the commit cannot lose the wake-up.
      // One statement: the batch committed, the wake-up of the consumer's subscriptions, and
      // whether it has a subscription a trigger loop should look at now.
      const done = await tx.query<{ subscribed: boolean }>(
        `WITH done AS (
           UPDATE batches SET state = 'committed', closed_at = now(), updated_at = now(), claimed_by = NULL, claim_expires_at = NULL
            WHERE id = $1 RETURNING ${BATCH_COLUMNS}),
         wake AS (${wakeSql('consumer = $2')} RETURNING 1)
         SELECT done.*, EXISTS (SELECT 1 FROM subscriptions WHERE consumer = $2 AND enabled) AS subscribed FROM done`, [id, batch.consumer]);
      // The batch as committed: its row as the UPDATE left it (nothing else in this transaction changes
      // it), its tables as read above (a commit never changes them).
      return { batch: assembleBatch(done.rows[0], tables), watermarks, alreadyCommitted: false, signals: announced, woke: done.rows[0]?.subscribed === true };
    });
  }

  /**
   * Gives up to `limit` open, unclaimed (or claim-expired) batches to `owner` for
   * `claimSeconds`, oldest first. Rows another replica is claiming right now are skipped
   * (FOR UPDATE SKIP LOCKED), never waited for: each batch goes to exactly one claimer.
   */
  claimOpen(opts: { owner: string; limit: number; claimSeconds: number }): Promise<Batch[]> {
    return this.q.withTransaction(async (tx) => {
      const picked = await tx.query<{ id: bigint }>(
        `SELECT id FROM batches
          WHERE state = 'open' AND (claimed_by IS NULL OR claim_expires_at < now())
          ORDER BY created_at, id
          LIMIT $1
          FOR UPDATE SKIP LOCKED`, [opts.limit]);
      const ids = picked.rows.map((r) => r.id);
      if (ids.length === 0) return [];
      await tx.query(
        `UPDATE batches SET claimed_by = $2, claim_expires_at = now() + $3::INT8 * INTERVAL '1 second', updated_at = now()
          WHERE id = ANY($1::INT8[])`, [int8Array(ids), opts.owner, opts.claimSeconds]);
      return new BatchesRepo(tx).load(ids);
    });
  }

  /** Drops `owner`'s claim on a batch (false when it was not the owner's). */
  async releaseClaim(id: bigint, owner: string): Promise<boolean> {
    const res = await this.q.query(
      'UPDATE batches SET claimed_by = NULL, claim_expires_at = NULL, updated_at = now() WHERE id = $1 AND claimed_by = $2', [id, owner]);
    return res.rowCount > 0;
  }
}

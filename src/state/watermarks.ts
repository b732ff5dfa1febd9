import { z } from 'zod';
import { IpsError } from '../errors.js';
import { int64FromJson, int64ToJson, newId, parseInput, parseRow } from './common.js';
import { jsonParam, sqlState, SQLSTATE, type Queryable, type SqlParam } from './database.js';
import { readArchives } from './batch-archive.js';
import { sourceTableColumns, sourceTableFromRow, type SourceTable } from './source-tables.js';

/**
 * A consumer's position in one source table, at file granularity: every snapshot up to and
 * including `snapshotId` is processed; of the snapshots after it up to `partialSnapshotId`,
 * the files in `processedFiles` are processed too (a batch limit split them). A null
 * snapshotId means nothing is processed yet (from the table's first snapshot).
 */
export interface WatermarkPosition {
  snapshotId: bigint | null;
  sequenceNumber: bigint | null;
  partialSnapshotId: bigint | null;
  partialSequenceNumber: bigint | null;
  /** Paths, sorted and without duplicates. */
  processedFiles: string[];
}

export const START_POSITION: WatermarkPosition = Object.freeze({
  snapshotId: null, sequenceNumber: null, partialSnapshotId: null, partialSequenceNumber: null, processedFiles: [],
}) as WatermarkPosition;

export interface Watermark extends WatermarkPosition {
  consumer: string;
  sourceTable: string;
  /** Moves by one on every change of the position: the compare-and-set token. */
  version: bigint;
  /** Fields the consumer wants range parameters for, in this table. */
  rangeFields: string[];
  createdAt: Date;
  updatedAt: Date;
}

/** Who moved a watermark and why: one audit row per move. */
export interface MoveAudit {
  /** The principal or process (token subject, `cli`, replica id). */
  actor: string;
  /** `subscribe`, `commit`, `reset`, … */
  reason: string;
  batchId?: bigint | null;
}

export interface WatermarkMove {
  id: bigint;
  consumer: string;
  sourceTable: string;
  batchId: bigint | null;
  actor: string;
  reason: string;
  fromVersion: bigint | null;
  toVersion: bigint;
  from: WatermarkPosition | null;
  to: WatermarkPosition;
  movedAt: Date;
}

const positionSchema = z.object({
  snapshotId: z.bigint().nullable(),
  sequenceNumber: z.bigint().nullable(),
  partialSnapshotId: z.bigint().nullable(),
  partialSequenceNumber: z.bigint().nullable(),
  processedFiles: z.array(z.string().min(1)),
}).superRefine((p, ctx) => {
  if ((p.snapshotId === null) !== (p.sequenceNumber === null)) {
    ctx.addIssue({ code: 'custom', message: 'snapshotId and sequenceNumber are set together', path: ['sequenceNumber'] });
  }
  if ((p.partialSnapshotId === null) !== (p.partialSequenceNumber === null)) {
    ctx.addIssue({ code: 'custom', message: 'partialSnapshotId and partialSequenceNumber are set together', path: ['partialSequenceNumber'] });
  }
  if (p.partialSnapshotId === null && p.processedFiles.length > 0) {
    ctx.addIssue({ code: 'custom', message: 'processedFiles need the partialSnapshotId they belong to', path: ['processedFiles'] });
  }
  if (p.partialSnapshotId !== null && p.processedFiles.length === 0) {
    ctx.addIssue({ code: 'custom', message: 'a partialSnapshotId needs the processedFiles of it', path: ['processedFiles'] });
  }
}).transform((p): WatermarkPosition => ({ ...p, processedFiles: [...new Set(p.processedFiles)].sort() }));

export function checkPosition(p: WatermarkPosition): WatermarkPosition {
  return parseInput(positionSchema, p, 'watermark position');
}

/** The JSON form of a position (audit rows, API): 64-bit values as strings. */
export function positionToJson(p: WatermarkPosition): Record<string, unknown> {
  return {
    snapshot_id: int64ToJson(p.snapshotId),
    sequence_number: int64ToJson(p.sequenceNumber),
    partial_snapshot_id: int64ToJson(p.partialSnapshotId),
    partial_sequence_number: int64ToJson(p.partialSequenceNumber),
    processed_files: p.processedFiles,
  };
}

const positionJsonSchema = z.object({
  snapshot_id: int64FromJson.nullable(),
  sequence_number: int64FromJson.nullable(),
  partial_snapshot_id: int64FromJson.nullable(),
  partial_sequence_number: int64FromJson.nullable(),
  processed_files: z.array(z.string()),
}).transform((j): WatermarkPosition => ({
  snapshotId: j.snapshot_id,
  sequenceNumber: j.sequence_number,
  partialSnapshotId: j.partial_snapshot_id,
  partialSequenceNumber: j.partial_sequence_number,
  processedFiles: j.processed_files,
}));

const rowSchema = z.object({
  consumer: z.string(),
  source_table: z.string(),
  snapshot_id: z.bigint().nullable(),
  sequence_number: z.bigint().nullable(),
  partial_snapshot_id: z.bigint().nullable(),
  partial_sequence_number: z.bigint().nullable(),
  processed_files: z.array(z.string()),
  version: z.bigint(),
  range_fields: z.array(z.string()),
  created_at: z.date(),
  updated_at: z.date(),
}).transform((r): Watermark => ({
  consumer: r.consumer,
  sourceTable: r.source_table,
  snapshotId: r.snapshot_id,
  sequenceNumber: r.sequence_number,
  partialSnapshotId: r.partial_snapshot_id,
  partialSequenceNumber: r.partial_sequence_number,
  processedFiles: r.processed_files,
  version: r.version,
  rangeFields: r.range_fields,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
}));

/**
 * A position without a partial snapshot or processed files is all in the row's scalar columns
 * (snapshot id, sequence number): its JSON is not stored (NULL), which keeps the audit row — one
 * per commit, kept for a year — at a third of its size. Only split positions store their JSON.
 */
function isSimple(p: WatermarkPosition): boolean {
  return p.partialSnapshotId === null && p.partialSequenceNumber === null && p.processedFiles.length === 0;
}

function simplePosition(snapshotId: bigint | null, sequenceNumber: bigint | null): WatermarkPosition {
  return { snapshotId, sequenceNumber, partialSnapshotId: null, partialSequenceNumber: null, processedFiles: [] };
}

const moveRowSchema = z.object({
  id: z.bigint(),
  consumer: z.string(),
  source_table: z.string(),
  batch_id: z.bigint().nullable(),
  actor: z.string(),
  reason: z.string(),
  from_version: z.bigint().nullable(),
  to_version: z.bigint(),
  from_snapshot_id: z.bigint().nullable(),
  from_sequence_number: z.bigint().nullable(),
  to_snapshot_id: z.bigint().nullable(),
  to_sequence_number: z.bigint().nullable(),
  from_position: positionJsonSchema.nullable(),
  to_position: positionJsonSchema.nullable(),
  moved_at: z.date(),
}).transform((r): WatermarkMove => ({
  id: r.id,
  consumer: r.consumer,
  sourceTable: r.source_table,
  batchId: r.batch_id,
  actor: r.actor,
  reason: r.reason,
  fromVersion: r.from_version,
  toVersion: r.to_version,
  // No from_version: the move that created the watermark (no position before it).
  from: r.from_version === null ? null : (r.from_position ?? simplePosition(r.from_snapshot_id, r.from_sequence_number)),
  to: r.to_position ?? simplePosition(r.to_snapshot_id, r.to_sequence_number),
  movedAt: r.moved_at,
}));

const COLUMNS = `consumer, source_table, snapshot_id, sequence_number, partial_snapshot_id, partial_sequence_number,
  processed_files, version, range_fields, created_at, updated_at`;
const MOVE_COLUMNS = `id, consumer, source_table, batch_id, actor, reason, from_version, to_version,
  from_snapshot_id, from_sequence_number, to_snapshot_id, to_sequence_number, from_position, to_position, moved_at`;

const auditSchema = z.object({
  actor: z.string().min(1),
  reason: z.string().min(1),
  batchId: z.bigint().nullish().transform((v) => v ?? null),
});

async function insertMove(
  tx: Queryable, consumer: string, sourceTable: string, audit: MoveAudit,
  from: { version: bigint; position: WatermarkPosition } | null, to: { version: bigint; position: WatermarkPosition },
): Promise<void> {
  const a = parseInput(auditSchema, audit, 'watermark audit');
  const params: SqlParam[] = [
    newId(), consumer, sourceTable, a.batchId, a.actor, a.reason,
    from?.version ?? null, to.version,
    from?.position.snapshotId ?? null, from?.position.sequenceNumber ?? null,
    to.position.snapshotId, to.position.sequenceNumber,
    from === null || isSimple(from.position) ? null : jsonParam(positionToJson(from.position)),
    isSimple(to.position) ? null : jsonParam(positionToJson(to.position)),
  ];
  await tx.query(
    `INSERT INTO watermark_moves (id, consumer, source_table, batch_id, actor, reason, from_version, to_version,
       from_snapshot_id, from_sequence_number, to_snapshot_id, to_sequence_number, from_position, to_position)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::JSONB, $14::JSONB)`, params);
}

/** Oldest first: by time, then by version (the audit log's order). */
function byMoveOrder(a: WatermarkMove, b: WatermarkMove): number {
  const t = a.movedAt.getTime() - b.movedAt.getTime();
  if (t !== 0) return t;
  return a.toVersion < b.toVersion ? -1 : a.toVersion > b.toVersion ? 1 : 0;
}

function notFound(consumer: string, sourceTable: string): IpsError {
  return new IpsError('NOT_FOUND', `consumer "${consumer}" has no watermark on source table "${sourceTable}"`,
    { details: { consumer, source_table: sourceTable } });
}

/**
 * Moves a watermark by compare-and-set on its version, and writes the audit row in the same
 * transaction (joins the caller's transaction when `q` is one). CONFLICT when the version is
 * not `expectedVersion` any more (another commit or a reset came first); NOT_FOUND when the
 * consumer has no watermark on the table. Returns the watermark after the move.
 */
export async function advanceWatermark(
  q: Queryable, consumer: string, sourceTable: string, expectedVersion: bigint, to: WatermarkPosition, audit: MoveAudit,
): Promise<Watermark> {
  const move = watermarkMove(consumer, sourceTable, expectedVersion, to, audit);
  return q.withTransaction(async (tx) => {
    const res = await tx.query(`WITH ${move.ctes} SELECT * FROM moved`, move.params);
    return res.rows[0] === undefined ? watermarkNotMoved(tx, consumer, sourceTable, expectedVersion) : parseRow(rowSchema, res.rows[0], 'watermarks');
  });
}

/**
 * A watermark's compare-and-set move as common table expressions (`moved`, `audit`) over
 * parameters $1..$13, for a statement that does more in the same round trip (a batch commit):
 * the row locked (its position before the move is the audit row's "from"), moved if it is still
 * at the expected version, and the audit row (as insertMove writes it: the "from" position as
 * JSON only when it is partial). `moved` holds the moved row, none when the row is missing or
 * moved on (see watermarkNotMoved). $1 is the consumer, $10 the batch id (or null).
 */
export function watermarkMove(consumer: string, sourceTable: string, expectedVersion: bigint, to: WatermarkPosition, audit: MoveAudit): { ctes: string; params: SqlParam[] } {
  const pos = checkPosition(to);
  const a = parseInput(auditSchema, audit, 'watermark audit');
  return {
    ctes: `moved AS (
         UPDATE watermarks w SET snapshot_id = $4, sequence_number = $5, partial_snapshot_id = $6, partial_sequence_number = $7,
                processed_files = $8::JSONB, version = w.version + 1, updated_at = now()
           FROM (SELECT ${COLUMNS} FROM watermarks WHERE consumer = $1 AND source_table = $2 FOR UPDATE) old
          WHERE w.consumer = old.consumer AND w.source_table = old.source_table AND old.version = $3
         RETURNING ${PREFIXED_COLUMNS('w')}, ${PREFIXED_COLUMNS('old', OLD_PREFIX)}),
       audit AS (
         INSERT INTO watermark_moves (id, consumer, source_table, batch_id, actor, reason, from_version, to_version,
           from_snapshot_id, from_sequence_number, to_snapshot_id, to_sequence_number, from_position, to_position)
         SELECT $9::INT8, m.consumer, m.source_table, $10::INT8, $11::TEXT, $12::TEXT, m.old_version, m.version,
                m.old_snapshot_id, m.old_sequence_number, m.snapshot_id, m.sequence_number,
                CASE WHEN m.old_partial_snapshot_id IS NULL AND m.old_partial_sequence_number IS NULL AND jsonb_array_length(m.old_processed_files) = 0
                     THEN NULL
                     ELSE jsonb_build_object('snapshot_id', m.old_snapshot_id::TEXT, 'sequence_number', m.old_sequence_number::TEXT,
                       'partial_snapshot_id', m.old_partial_snapshot_id::TEXT, 'partial_sequence_number', m.old_partial_sequence_number::TEXT,
                       'processed_files', m.old_processed_files) END,
                $13::JSONB
           FROM moved m)`,
    params: [consumer, sourceTable, expectedVersion, pos.snapshotId, pos.sequenceNumber, pos.partialSnapshotId, pos.partialSequenceNumber,
      jsonParam(pos.processedFiles), newId(), a.batchId, a.actor, a.reason, isSimple(pos) ? null : jsonParam(positionToJson(pos))],
  };
}

/** The columns of `moved` (see watermarkMove) as `<prefix><column>`, for a statement that returns other rows beside it. */
export function movedColumns(alias: string, prefix: string): string {
  return COLUMN_NAMES.map((c) => `${alias}.${c} AS ${prefix}${c}`).join(', ');
}

/** The moved watermark from a row whose `moved` columns carry `prefix` (movedColumns); undefined when nothing moved. */
export function movedFromRow(row: Record<string, unknown>, prefix: string): Watermark | undefined {
  if (row[`${prefix}consumer`] === null || row[`${prefix}consumer`] === undefined) return undefined;
  const own: Record<string, unknown> = {};
  for (const c of COLUMN_NAMES) own[c] = row[prefix + c];
  return parseRow(rowSchema, own, 'watermarks');
}

/** Why a watermarkMove moved nothing: the watermark is missing (NOT_FOUND) or at another version (CONFLICT). Always throws. */
export async function watermarkNotMoved(q: Queryable, consumer: string, sourceTable: string, expectedVersion: bigint): Promise<never> {
  const cur = await q.query<{ version: bigint }>('SELECT version FROM watermarks WHERE consumer = $1 AND source_table = $2', [consumer, sourceTable]);
  if (cur.rows[0] === undefined) throw notFound(consumer, sourceTable);
  throw conflict(consumer, sourceTable, expectedVersion, cur.rows[0].version);
}

const OLD_PREFIX = 'old_';
const SOURCE_PREFIX = 'source_table__';
const COLUMN_NAMES = COLUMNS.split(',').map((c) => c.trim());
/** COLUMNS qualified by a table alias, each named with a prefix (RETURNING of a self-join). */
function PREFIXED_COLUMNS(alias: string, prefix = ''): string {
  return COLUMN_NAMES.map((c) => `${alias}.${c}${prefix ? ` AS ${prefix}${c}` : ''}`).join(', ');
}


function conflict(consumer: string, sourceTable: string, expected: bigint, actual: bigint | null): IpsError {
  return new IpsError('CONFLICT',
    `the watermark of consumer "${consumer}" on "${sourceTable}" moved: expected version ${expected}` +
    `${actual !== null ? `, it is at version ${actual}` : ''} (another commit or a reset came first); prepare a new batch`,
    { details: { consumer, source_table: sourceTable, expected_version: expected.toString(), actual_version: actual?.toString() ?? null } });
}

export class WatermarksRepo {
  constructor(private readonly q: Queryable) {}

  /**
   * Subscribes a consumer to a source table at a position (default: from the first snapshot),
   * version 1, with an audit row. ALREADY_EXISTS when subscribed; NOT_FOUND when the consumer or
   * table does not exist.
   */
  create(input: { consumer: string; sourceTable: string; position?: WatermarkPosition; rangeFields?: string[] }, audit: MoveAudit): Promise<Watermark> {
    const pos = checkPosition(input.position ?? START_POSITION);
    const rangeFields = parseInput(z.array(z.string().min(1)), input.rangeFields ?? [], 'range fields');
    parseInput(auditSchema, audit, 'watermark audit');
    return this.q.withTransaction(async (tx) => {
      let row: unknown;
      try {
        const res = await tx.query(
          `INSERT INTO watermarks (consumer, source_table, snapshot_id, sequence_number, partial_snapshot_id, partial_sequence_number,
             processed_files, range_fields)
           VALUES ($1, $2, $3, $4, $5, $6, $7::JSONB, $8::JSONB)
           RETURNING ${COLUMNS}`,
          [input.consumer, input.sourceTable, pos.snapshotId, pos.sequenceNumber, pos.partialSnapshotId, pos.partialSequenceNumber,
            jsonParam(pos.processedFiles), jsonParam(rangeFields)]);
        row = res.rows[0];
      } catch (e) {
        const s = sqlState(e);
        if (s === SQLSTATE.UNIQUE_VIOLATION) {
          throw new IpsError('ALREADY_EXISTS', `consumer "${input.consumer}" already subscribes to "${input.sourceTable}"`, { cause: e });
        }
        if (s === SQLSTATE.FOREIGN_KEY_VIOLATION) {
          throw new IpsError('NOT_FOUND', `consumer "${input.consumer}" or source table "${input.sourceTable}" does not exist`, { cause: e });
        }
        throw e;
      }
      const wm = parseRow(rowSchema, row, 'watermarks');
      await insertMove(tx, wm.consumer, wm.sourceTable, audit, null, { version: wm.version, position: wm });
      return wm;
    });
  }

  async get(consumer: string, sourceTable: string): Promise<Watermark | undefined> {
    const res = await this.q.query(`SELECT ${COLUMNS} FROM watermarks WHERE consumer = $1 AND source_table = $2`, [consumer, sourceTable]);
    return res.rows[0] === undefined ? undefined : parseRow(rowSchema, res.rows[0], 'watermarks');
  }

  async require(consumer: string, sourceTable: string): Promise<Watermark> {
    const w = await this.get(consumer, sourceTable);
    if (!w) throw notFound(consumer, sourceTable);
    return w;
  }

  async listByConsumer(consumer: string): Promise<Watermark[]> {
    const res = await this.q.query(`SELECT ${COLUMNS} FROM watermarks WHERE consumer = $1 ORDER BY source_table`, [consumer]);
    return res.rows.map((r) => parseRow(rowSchema, r, 'watermarks'));
  }

  /**
   * The consumer's subscriptions, each with its source table, in one statement: what a prepare
   * that names no table reads first (it needs both, and would otherwise read the table again).
   */
  async listByConsumerWithSources(consumer: string): Promise<{ watermark: Watermark; source: SourceTable }[]> {
    const res = await this.q.query<Record<string, unknown>>(
      `SELECT ${PREFIXED_COLUMNS('w')}, ${sourceTableColumns('s', SOURCE_PREFIX)}
         FROM watermarks w JOIN source_tables s ON s.name = w.source_table
        WHERE w.consumer = $1 ORDER BY w.source_table`, [consumer]);
    return res.rows.map((r) => ({ watermark: parseRow(rowSchema, r, 'watermarks'), source: sourceTableFromRow(r, SOURCE_PREFIX) }));
  }

  /** Every watermark (or one consumer's), by table then consumer: a fleet-wide view in one statement. */
  async listAll(filter: { consumer?: string } = {}): Promise<Watermark[]> {
    const res = filter.consumer === undefined
      ? await this.q.query(`SELECT ${COLUMNS} FROM watermarks ORDER BY source_table, consumer`)
      : await this.q.query(`SELECT ${COLUMNS} FROM watermarks WHERE consumer = $1 ORDER BY source_table, consumer`, [filter.consumer]);
    return res.rows.map((r) => parseRow(rowSchema, r, 'watermarks'));
  }

  async listByTable(sourceTable: string): Promise<Watermark[]> {
    const res = await this.q.query(`SELECT ${COLUMNS} FROM watermarks WHERE source_table = $1 ORDER BY consumer`, [sourceTable]);
    return res.rows.map((r) => parseRow(rowSchema, r, 'watermarks'));
  }

  /** See advanceWatermark(): compare-and-set on the version, with the audit row. */
  advance(consumer: string, sourceTable: string, expectedVersion: bigint, to: WatermarkPosition, audit: MoveAudit): Promise<Watermark> {
    return advanceWatermark(this.q, consumer, sourceTable, expectedVersion, to, audit);
  }

  /** Changes which fields get range parameters (not a move: the version stays). */
  async setRangeFields(consumer: string, sourceTable: string, rangeFields: string[]): Promise<Watermark> {
    const fields = parseInput(z.array(z.string().min(1)), rangeFields, 'range fields');
    const res = await this.q.query(
      `UPDATE watermarks SET range_fields = $3::JSONB, updated_at = now() WHERE consumer = $1 AND source_table = $2 RETURNING ${COLUMNS}`,
      [consumer, sourceTable, jsonParam(fields)]);
    if (res.rows[0] === undefined) throw notFound(consumer, sourceTable);
    return parseRow(rowSchema, res.rows[0], 'watermarks');
  }

  /** Unsubscribes (the audit history stays). */
  async delete(consumer: string, sourceTable: string): Promise<boolean> {
    const res = await this.q.query('DELETE FROM watermarks WHERE consumer = $1 AND source_table = $2', [consumer, sourceTable]);
    return res.rowCount > 0;
  }

  /**
   * The oldest committed position any consumer of the table still stands on (by sequence
   * number; a consumer that has processed nothing yet comes first, with null ids): snapshot
   * expiry must keep that snapshot and its descendants. undefined when nobody subscribes.
   */
  async oldestNeeded(sourceTable: string): Promise<{ consumer: string; snapshotId: bigint | null; sequenceNumber: bigint | null } | undefined> {
    const res = await this.q.query<{ consumer: string; snapshot_id: bigint | null; sequence_number: bigint | null }>(
      `SELECT consumer, snapshot_id, sequence_number FROM watermarks WHERE source_table = $1
        ORDER BY (sequence_number IS NOT NULL), sequence_number, consumer LIMIT 1`, [sourceTable]);
    const r = res.rows[0];
    return r === undefined ? undefined : { consumer: r.consumer, snapshotId: r.snapshot_id, sequenceNumber: r.sequence_number };
  }

  /** oldestNeeded() of every table that has a consumer, in one statement (same order, same collation). */
  async oldestNeededByTable(): Promise<Map<string, { consumer: string; snapshotId: bigint | null; sequenceNumber: bigint | null }>> {
    const res = await this.q.query<{ source_table: string; consumer: string; snapshot_id: bigint | null; sequence_number: bigint | null }>(
      `SELECT DISTINCT ON (source_table) source_table, consumer, snapshot_id, sequence_number FROM watermarks
        ORDER BY source_table, (sequence_number IS NOT NULL), sequence_number, consumer`);
    return new Map(res.rows.map((r) => [r.source_table, { consumer: r.consumer, snapshotId: r.snapshot_id, sequenceNumber: r.sequence_number }]));
  }

  /**
   * Per watermark (of one consumer, or all), its first move after `since`, if it moved since:
   * that move's `from` is where the watermark stood at `since` (a watermark that did not move
   * stands where it is now). Live moves in one statement over the moves' time index; archived
   * ones only from batches closed after `since` (the retention pass archives batches a day old
   * or more, so a window of minutes reads none).
   */
  async firstMovesSince(since: Date, filter: { consumer?: string } = {}): Promise<WatermarkMove[]> {
    const params: SqlParam[] = [since];
    const byConsumer = filter.consumer !== undefined ? ` AND consumer = $${params.push(filter.consumer)}` : '';
    const res = await this.q.query(
      `SELECT DISTINCT ON (consumer, source_table) ${MOVE_COLUMNS} FROM watermark_moves
        WHERE moved_at > $1${byConsumer} ORDER BY consumer, source_table, moved_at, to_version`, params);
    const first = new Map<string, WatermarkMove>();
    const keep = (m: WatermarkMove) => {
      const k = `${m.consumer}\u0000${m.sourceTable}`;
      const cur = first.get(k);
      if (!cur || byMoveOrder(m, cur) < 0) first.set(k, m);
    };
    for (const r of res.rows) keep(parseRow(moveRowSchema, r, 'watermark_moves'));
    for (const a of await readArchives(this.q, `closed_at > $1${byConsumer}`, params)) {
      for (const row of a.rows.moves) {
        const m = parseRow(moveRowSchema, row, 'archived watermark move');
        if (m.movedAt > since) keep(m);
      }
    }
    return [...first.values()];
  }

  /** The latest `limit` moves of one watermark, oldest first (the console's watermark history). */
  async recentMoves(consumer: string, sourceTable: string, limit: number): Promise<WatermarkMove[]> {
    const res = await this.q.query(
      `SELECT ${MOVE_COLUMNS} FROM watermark_moves WHERE consumer = $1 AND source_table = $2
        ORDER BY moved_at DESC, to_version DESC LIMIT $3`, [consumer, sourceTable, limit]);
    const live = res.rows.map((r) => parseRow(moveRowSchema, r, 'watermark_moves'));
    // Archived commit moves, newest batches first, until `limit` of this table's: the commits of one
    // watermark happen in the order its batches were created (each is planned on the previous one's
    // version), so the newest batches hold the newest moves.
    const archived: WatermarkMove[] = [];
    const page = Math.max(limit, 50);
    for (let offset = 0; archived.length < limit; offset += page) {
      const batches = await readArchives(this.q, 'consumer = $1', [consumer], 'created_at DESC, id DESC', { limit: page, offset });
      for (const a of batches) {
        for (const m of a.rows.moves) if (m['source_table'] === sourceTable) archived.push(parseRow(moveRowSchema, m, 'archived watermark move'));
      }
      if (batches.length < page) break;
    }
    return [...live, ...archived].sort(byMoveOrder).slice(-limit);
  }

  /** The moves folded into archived batches (src/state/batch-archive.ts) matching a batches condition and a test. */
  private async archivedMoves(where: string, params: SqlParam[], keep: (m: WatermarkMove) => boolean): Promise<WatermarkMove[]> {
    const archives = await readArchives(this.q, where, params);
    return archives.flatMap((a) => a.rows.moves.map((m) => parseRow(moveRowSchema, m, 'archived watermark move'))).filter(keep);
  }

  /** Audit rows of watermark moves, oldest first. */
  async moves(filter: { consumer?: string; sourceTable?: string; batchId?: bigint; limit?: number } = {}): Promise<WatermarkMove[]> {
    const where: string[] = [];
    const params: SqlParam[] = [];
    if (filter.consumer !== undefined) where.push(`consumer = $${params.push(filter.consumer)}`);
    if (filter.sourceTable !== undefined) where.push(`source_table = $${params.push(filter.sourceTable)}`);
    if (filter.batchId !== undefined) where.push(`batch_id = $${params.push(filter.batchId)}`);
    const limit = filter.limit !== undefined ? ` LIMIT $${params.push(filter.limit)}` : '';
    const res = await this.q.query(
      `SELECT ${MOVE_COLUMNS} FROM watermark_moves${where.length ? ` WHERE ${where.join(' AND ')}` : ''}
        ORDER BY consumer, source_table, moved_at, to_version${limit}`, params);
    const live = res.rows.map((r) => parseRow(moveRowSchema, r, 'watermark_moves'));
    const archived = filter.batchId !== undefined ? await this.archivedMoves('id = $1', [filter.batchId], () => true)
      : filter.consumer !== undefined ? await this.archivedMoves('consumer = $1', [filter.consumer], () => true)
      : await this.archivedMoves('true', [], () => true);
    const more = archived.filter((m) => (filter.consumer === undefined || m.consumer === filter.consumer)
      && (filter.sourceTable === undefined || m.sourceTable === filter.sourceTable) && (filter.batchId === undefined || m.batchId === filter.batchId));
    if (more.length === 0) return live;
    const all = [...live, ...more].sort((a, b) => (a.consumer < b.consumer ? -1 : a.consumer > b.consumer ? 1
      : a.sourceTable < b.sourceTable ? -1 : a.sourceTable > b.sourceTable ? 1 : byMoveOrder(a, b)));
    return filter.limit !== undefined ? all.slice(0, filter.limit) : all;
  }
}
